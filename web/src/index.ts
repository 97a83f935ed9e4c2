// imaccess browser SDK entry point (bundled to src/imaccess/web/imaccess.js).
export * from './client.js';
