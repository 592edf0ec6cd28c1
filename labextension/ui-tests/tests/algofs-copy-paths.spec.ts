/**
 * The file browser's context menu copies a mounted file's data:// URI and its absolute path (issue 25,
 * item 6): right-click cities.csv in algofs/data/demo/datasets, pick the entry, read the system clipboard.
 * The entries are not offered outside the mount.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const ARTIFACTS = process.env.ALGOFS_ARTIFACTS || 'test-results';
const DATASETS = 'algofs/data/demo/datasets';

test.use({ autoGoto: true, permissions: ['clipboard-read', 'clipboard-write'] });

interface IStatus {
  mounted: boolean;
  mode: string;
  mountpoint: string;
  mountpoint_abs: string;
}

async function status(page: IJupyterLabPageFixture): Promise<IStatus> {
  return (await (await page.request.get('/algofs/status')).json()) as IStatus;
}

function item(page: IJupyterLabPageFixture, name: string) {
  return page.locator('.jp-DirListing-item', {
    has: page.locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${name.replace(/\./g, '\\.')}$`) })
  });
}

async function goTo(page: IJupyterLabPageFixture, dir: string): Promise<void> {
  await page.evaluate(async d => {
    await window.jupyterapp.commands.execute('filebrowser:go-to-path', { path: d });
  }, dir);
  await expect.poll(() => page.filebrowser.getCurrentDirectory()).toBe(dir);
}

/** Right-click `name` and pick `label` from the context menu; returns the clipboard's text after. */
async function copyFromMenu(page: IJupyterLabPageFixture, name: string, label: string, shot: string): Promise<string> {
  await page.evaluate(() => navigator.clipboard.writeText('(nothing copied)'));
  await item(page, name).click({ button: 'right' });
  const entry = page.locator('.lm-Menu-item', { hasText: label });
  await expect(entry).toBeVisible();
  await page.screenshot({ path: path.join(ARTIFACTS, shot) });
  await entry.click();
  return page.evaluate(() => navigator.clipboard.readText());
}

test('the file browser copies a mounted file\'s data:// URI and absolute path', async ({ page }) => {
  const mount = await page.request.post('/algofs/mount', { data: {} });
  expect(mount.ok()).toBeTruthy();
  await expect.poll(async () => (await status(page)).mounted, { timeout: 60000 }).toBe(true);
  const { mode, mountpoint, mountpoint_abs: mountpointAbs } = await status(page);
  expect(mode).toBe('fuse');
  expect(mountpoint).toBe('algofs');
  try {
    await goTo(page, DATASETS);
    await expect(item(page, 'cities.csv')).toBeVisible();

    const uri = await copyFromMenu(page, 'cities.csv', 'Copy data:// URI', 'copy-paths-01-menu.png');
    expect(uri).toBe('data://demo/datasets/cities.csv');
    await expect(page.locator('.Toastify__toast', { hasText: 'data://demo/datasets/cities.csv' })).toBeVisible();

    const absolute = await copyFromMenu(page, 'cities.csv', 'Copy Absolute Path', 'copy-paths-02-menu.png');
    expect(absolute).toBe(`${mountpointAbs}/data/demo/datasets/cities.csv`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'copy-paths-03-copied.png') });

    // The mount's top-level folder "data" has no URI (only a path); the mount point itself
    // (not inside the mount) has neither.
    await goTo(page, 'algofs');
    await item(page, 'data').click({ button: 'right' });
    await expect(page.locator('.lm-Menu-item', { hasText: 'Copy Absolute Path' })).toBeVisible();
    await expect(page.locator('.lm-Menu-item', { hasText: 'Copy data:// URI' })).toBeHidden();
    await page.keyboard.press('Escape');
    await goTo(page, '');
    await item(page, 'algofs').click({ button: 'right' });
    await expect(page.locator('.lm-Menu-item', { hasText: 'Copy Path' }).first()).toBeVisible();
    await expect(page.locator('.lm-Menu-item', { hasText: 'Copy data:// URI' })).toBeHidden();
    await expect(page.locator('.lm-Menu-item', { hasText: 'Copy Absolute Path' })).toBeHidden();
    await page.keyboard.press('Escape');
  } finally {
    await page.request.post('/algofs/unmount', { data: {} });
  }
});
