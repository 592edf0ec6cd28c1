/**
 * Galata on Debian's Chromium: no browser download is possible here, so the system binary is used,
 * and video stays off (it needs a downloaded ffmpeg). run.sh starts the Jupyter server and sets
 * TARGET_URL / ALGOFS_ARTIFACTS.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const artifacts = process.env.ALGOFS_ARTIFACTS || 'test-results';
const runName = process.env.ALGOFS_RUN_NAME || 'local';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

module.exports = {
  ...baseConfig,
  testDir: './tests',
  timeout: 90000,
  expect: { timeout: 15000 },
  retries: 0,
  workers: 1,
  outputDir: `${artifacts}/playwright-output-${runName}`,
  reporter: [['list'], ['html', { open: 'never', outputFolder: `${artifacts}/playwright-report-${runName}` }]],
  use: {
    ...baseConfig.use,
    baseURL: process.env.TARGET_URL || 'http://127.0.0.1:8888',
    video: 'off',
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: [
        ...(isRoot ? ['--no-sandbox'] : []),
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run'
      ]
    }
  }
};
