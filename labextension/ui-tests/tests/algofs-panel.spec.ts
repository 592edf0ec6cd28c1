/**
 * The AlgoFS panel as a user drives it, against a real Jupyter server (run.sh): embedded demo API
 * server, real FUSE mount, real kernel. Screenshots go to $ALGOFS_ARTIFACTS.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import { Locator } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

const ARTIFACTS = process.env.ALGOFS_ARTIFACTS || 'test-results';
const REPO = process.env.ALGOFS_REPO || path.resolve(__dirname, '../../..');
const PANEL_ID = 'algofs-panel';
// The demo server's seed content; the mount must show exactly this file.
const CITIES_SEED = path.join(REPO, 'algofs_jupyter/server/demo/content/data/demo/datasets/cities.csv');

test.use({ autoGoto: true });

async function shot(target: IJupyterLabPageFixture | Locator, name: string): Promise<void> {
  await target.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

async function openPanel(page: IJupyterLabPageFixture): Promise<Locator> {
  await page.sidebar.openTab(PANEL_ID);
  const panel = page.locator(`#${PANEL_ID}`);
  await expect(panel).toBeVisible();
  return panel;
}

async function openListedItem(page: IJupyterLabPageFixture, name: string): Promise<void> {
  const item = page.locator('.jp-DirListing-item', {
    has: page.locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${name}$`) })
  });
  await item.dblclick();
}

test('mount, browse the mount, open a CSV, pipe text to algorithms, unmount', async ({ page }) => {
  // A notebook cell with the text to send (created before the file browser moves into the mount).
  await page.notebook.createNew('pipe.ipynb');
  await page.notebook.setCell(0, 'code', 'hello from the browser');

  const panel = await openPanel(page);
  const state = panel.getByTestId('algofs-mount-state');
  await expect(state).toHaveText('Not mounted');
  await expect(panel.getByTestId('algofs-mount')).toBeEnabled();
  await shot(page, '01-panel-unmounted');

  // The algorithm tree comes from GET /algofs/algorithms.
  const echo = panel.locator('[data-algorithm="demo/echo"]');
  await expect(echo).toBeVisible();
  await echo.locator('.jp-AlgofsPanel-treeName').click();
  await expect(panel.getByTestId('algofs-target')).toHaveText('Target: demo/echo');

  // Send the active notebook cell.
  await panel.getByTestId('algofs-send-selection').click();
  const output = panel.getByTestId('algofs-pipe-output');
  await expect(output).toHaveText('hello from the browser');
  await expect(panel.getByTestId('algofs-output-meta')).toContainText('demo/echo');
  await expect(panel.getByTestId('algofs-output-meta')).toContainText('cell 1 of');
  await shot(panel, '02-pipe-echo-cell');

  // Only the selected text, when there is a selection (last word of the cell).
  await page.notebook.enterCellEditingMode(0);
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+Control+ArrowLeft');
  await panel.getByTestId('algofs-send-selection').click();
  await expect(panel.getByTestId('algofs-output-meta')).toContainText('selection in cell 1 of');
  await expect(output).toHaveText('browser');

  // Typed input to another user's algorithm.
  await panel.locator('[data-algorithm="anowell/Pinky"] .jp-AlgofsPanel-treeName').click();
  await panel.getByTestId('algofs-input').fill("Pinky, are you pondering what I'm pondering?");
  await panel.getByTestId('algofs-run-input').click();
  await expect(panel.getByTestId('algofs-output-meta')).toContainText('anowell/Pinky');
  await expect(output).toContainText('Brain');
  await expect(output).not.toHaveClass(/jp-mod-error/);
  await shot(panel, '03-pipe-pinky');

  // An algorithm error is shown in the panel, as an error.
  await panel.locator('[data-algorithm="demo/fail"] .jp-AlgofsPanel-treeName').click();
  await panel.getByTestId('algofs-run-input').click();
  await expect(output).toHaveClass(/jp-mod-error/);
  await expect(output).toContainText('always fails');
  await expect(panel.getByTestId('algofs-output-meta')).toContainText('demo/fail failed');

  // Mount (FUSE, over the extension's embedded API server).
  await panel.getByTestId('algofs-mount').click();
  await expect(state).toHaveText('Mounted', { timeout: 60000 });
  await expect(state).toHaveAttribute('data-mode', 'fuse');
  await expect(panel.getByTestId('algofs-mountpoint')).toHaveText('at /algofs');
  await expect(panel.getByTestId('algofs-cache-stats')).toBeVisible();
  await expect(panel.getByTestId('algofs-error')).toBeHidden();
  await shot(page, '04-mounted');

  // Into the mount with the default file browser, down to a CSV.
  await panel.getByTestId('algofs-open').click();
  await expect.poll(() => page.filebrowser.getCurrentDirectory()).toBe('algofs');
  for (const [dir, expected] of [
    ['data', 'algofs/data'],
    ['demo', 'algofs/data/demo'],
    ['datasets', 'algofs/data/demo/datasets']
  ]) {
    await openListedItem(page, dir);
    await expect.poll(() => page.filebrowser.getCurrentDirectory()).toBe(expected);
  }
  await shot(page, '05-file-browser-in-mount');
  await openListedItem(page, 'cities.csv');
  await expect(page.locator('.jp-MainAreaWidget .jp-CSVViewer')).toBeVisible();
  await expect(page.getByRole('tab', { name: /cities\.csv/ })).toBeVisible();
  await page.waitForTimeout(500); // let the data grid paint before the screenshot
  await shot(page, '06-csv-from-mount');

  // Same file as text: what JupyterLab read through the mount is the server's content.
  const firstLine = fs.readFileSync(CITIES_SEED, 'utf-8').split('\n')[0];
  await page.evaluate(async () => {
    await window.jupyterapp.commands.execute('docmanager:open', {
      path: 'algofs/data/demo/datasets/cities.csv',
      factory: 'Editor'
    });
  });
  await expect(page.locator('.jp-FileEditor .cm-content').first()).toContainText(firstLine);

  // Cache: reading the CSV through the mount filled it; clearing empties it.
  await openPanel(page);
  await expect(panel.getByTestId('algofs-cache-files')).toHaveText(/^[1-9]/);
  await shot(panel, '07-cache-after-reading');
  await panel.getByTestId('algofs-clear-cache').click();
  await expect(panel.getByTestId('algofs-cache-used')).toHaveText(/^0 B of /);
  await expect(panel.getByTestId('algofs-error')).toBeHidden();

  // Unmount from the command palette.
  await page.keyboard.press('Control+Shift+C');
  const palette = page.locator('#command-palette');
  await palette.locator('.lm-CommandPalette-input').fill('Unmount Algorithmia');
  await expect(palette.locator('.lm-CommandPalette-item.lm-mod-active')).toContainText('Unmount Algorithmia Data');
  await page.keyboard.press('Enter');
  await expect(state).toHaveText('Not mounted', { timeout: 30000 });
  await shot(page, '08-unmounted');
});

test('palette lists the AlgoFS commands', async ({ page }) => {
  await page.keyboard.press('Control+Shift+C');
  const palette = page.locator('#command-palette');
  await palette.locator('.lm-CommandPalette-input').fill('AlgoFS');
  for (const label of [
    'Show AlgoFS Panel',
    'Mount Algorithmia Data (AlgoFS)',
    'Unmount Algorithmia Data (AlgoFS)',
    'Clear AlgoFS Cache',
    'Open AlgoFS Mount in File Browser',
    'Send Selection to Algorithm (AlgoFS)'
  ]) {
    const exact = new RegExp(`^${label.replace(/[()]/g, '\\$&')}$`);
    await expect(palette.locator('.lm-CommandPalette-itemLabel', { hasText: exact })).toHaveCount(1);
  }
});

test('dark theme: the panel follows JupyterLab colours', async ({ page }) => {
  const lightPanel = await openPanel(page);
  const light = await lightPanel.evaluate(el => getComputedStyle(el).backgroundColor);
  await page.theme.setDarkTheme();
  const panel = await openPanel(page);
  const dark = await panel.evaluate(el => getComputedStyle(el).backgroundColor);
  const luminance = (rgb: string) => {
    const [r, g, b] = (rgb.match(/\d+(\.\d+)?/g) || ['255', '255', '255']).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  };
  expect(luminance(light)).toBeGreaterThan(0.7);
  expect(luminance(dark)).toBeLessThan(0.3);
  const badgeColor = await panel.getByTestId('algofs-mount-state').evaluate(el => getComputedStyle(el).color);
  expect(badgeColor).not.toBe('');
  await shot(page, '09-dark-theme');
});

