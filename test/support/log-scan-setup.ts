import { setup } from './log-scan';
export default setup;
