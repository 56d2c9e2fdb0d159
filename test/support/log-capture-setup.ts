import { installLogCapture } from './log-capture';

// Jest setup file: every test file's worker tees its structured log output into the run's capture.
installLogCapture();
