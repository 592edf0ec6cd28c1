/**
 * Opening files on the mount does not upload checkpoints (issue 25, item 1). JupyterLab checkpoints every
 * file it opens; the checkpoints of files on the mount must stay on this machine, not become
 * `.ipynb_checkpoints` files and collections on the API server that other clients list.
 *
 * run.sh's server (jupyter_server_test_config.py) keeps the embedded API server's content in
 * <work>/api-server and the local checkpoints in <work>/checkpoints; <work> is found from the mount point
 * the extension reports (<work>/root/algofs).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

const ARTIFACTS = process.env.ALGOFS_ARTIFACTS || 'test-results';
const DATASETS = 'algofs/data/demo/datasets';

test.use({ autoGoto: true });

interface IStatus {
  mounted: boolean;
  mode: string;
  mountpoint_abs: string;
}

async function status(page: IJupyterLabPageFixture): Promise<IStatus> {
  return (await (await page.request.get('/algofs/status')).json()) as IStatus;
}

/** Every name in `dir` (recursively) that is a checkpoint file or folder. */
function checkpointNames(dir: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.name.includes('.ipynb_checkpoints') || entry.name.includes('-checkpoint')) {
      found.push(full);
    }
    if (entry.isDirectory()) {
      found.push(...checkpointNames(full));
    }
  }
  return found;
}

async function checkpointCount(page: IJupyterLabPageFixture, file: string): Promise<number> {
  const response = await page.request.get(`/api/contents/${file}/checkpoints`);
  return response.ok() ? ((await response.json()) as unknown[]).length : -1;
}

test('opening files on the mount keeps their checkpoints off the API server', async ({ page }) => {
  const mount = await page.request.post('/algofs/mount', { data: {} });
  expect(mount.ok()).toBeTruthy();
  await expect.poll(async () => (await status(page)).mounted, { timeout: 60000 }).toBe(true);
  const { mode, mountpoint_abs: mountpoint } = await status(page);
  expect(mode).toBe('fuse');
  const work = path.dirname(path.dirname(mountpoint));
  const apiServer = path.join(work, 'api-server');
  try {
    expect(fs.existsSync(path.join(apiServer, 'data/demo/datasets/cities.csv'))).toBeTruthy();

    // Open a CSV and a JSON file from the file browser, as a user does.
    await page.evaluate(async dir => {
      await window.jupyterapp.commands.execute('filebrowser:go-to-path', { path: dir });
    }, DATASETS);
    await expect.poll(() => page.filebrowser.getCurrentDirectory()).toBe(DATASETS);
    for (const [name, widget] of [
      ['cities.csv', '.jp-MainAreaWidget .jp-CSVViewer'],
      ['planets.json', '.jp-MainAreaWidget .jp-RenderedJSON']
    ]) {
      await page
        .locator('.jp-DirListing-item', {
          has: page.locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${name.replace('.', '\\.')}$`) })
        })
        .dblclick();
      await expect(page.getByRole('tab', { name: new RegExp(name.replace('.', '\\.')) })).toBeVisible();
      await expect(page.locator(widget).first()).toBeVisible();
      // JupyterLab made its checkpoint of the opened file (the server answers it)...
      await expect.poll(() => checkpointCount(page, `${DATASETS}/${name}`), { timeout: 30000 }).toBe(1);
    }
    await page.waitForTimeout(500); // let the viewers paint before the screenshot
    await page.screenshot({ path: path.join(ARTIFACTS, 'checkpoints-01-opened-on-mount.png') });

    // ...on this machine, in the private checkpoint directory, not on the API server or the mount.
    expect(checkpointNames(apiServer)).toEqual([]);
    for (const dir of ['data/demo', 'data/demo/datasets']) {
      expect(fs.readdirSync(path.join(mountpoint, dir))).not.toContain('.ipynb_checkpoints');
    }
    const local = checkpointNames(path.join(work, 'checkpoints')).map(p => path.basename(p));
    expect(local).toEqual(expect.arrayContaining(['cities-checkpoint.csv', 'planets-checkpoint.json']));
  } finally {
    // Leave the server as the other specs expect it: not mounted.
    await page.request.post('/algofs/unmount', { data: {} });
    await expect.poll(async () => (await status(page)).mounted, { timeout: 30000 }).toBe(false);
  }
});
