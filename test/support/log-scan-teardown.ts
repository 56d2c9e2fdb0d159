import { teardown } from './log-scan';
export default teardown;
