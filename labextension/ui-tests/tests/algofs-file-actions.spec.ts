/**
 * The file browser's own actions inside algofs/ (issue 24, item 3), in both modes: new folder, rename,
 * copy/paste, duplicate, and delete of a file and of a non-empty folder, each from the context menu as a
 * user does. A delete there is permanent (docs/jupyter.md "Deleting in algofs/"), and JupyterLab's dialog
 * must say so ("permanently delete"), while outside algofs/ it keeps saying "move to trash".
 *
 * What each action did is checked on the embedded API server's content root (<work>/api-server, where
 * <work> is found from the mount point the extension reports, <work>/root/algofs): what every other client
 * of the API sees. run.sh runs the first test against a server with FUSE and the @fallback one against a
 * server without (jupyter_server_test_config.py gives that one AlgofsContentsManager).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as fs from 'fs';
import * as path from 'path';

const ARTIFACTS = process.env.ALGOFS_ARTIFACTS || 'test-results';
const DATASETS = 'algofs/data/demo/datasets';

test.use({
  autoGoto: false, // openLab() below
  // Galata's own wait for the Launcher, with a longer timeout
  waitForApplication: async ({ baseURL }, use) => {
    await use(async (page, helpers) => {
      await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 120000 });
      await helpers.waitForCondition(() => helpers.activity.isTabActive('Launcher'), 120000);
      await helpers.activity.activateTab('Launcher');
    });
  }
});

/**
 * Galata's goto, waiting up to 2 minutes instead of 15 s for JupyterLab's plugins: on a loaded 2-core
 * machine (load average 19 while this was written) plugins took 5 s each to activate, and Galata's fixed
 * 15 s wait failed before JupyterLab had started.
 */
async function openLab(page: IJupyterLabPageFixture): Promise<void> {
  const lab = page as unknown as { waitForAppStarted: () => Promise<unknown> };
  lab.waitForAppStarted = async () => {
    await page.page.waitForFunction(() => typeof window.jupyterapp === 'object', undefined, { timeout: 120000 });
    await page.page.evaluate(async () => {
      await window.jupyterapp.started; // every plugin activated
    });
  };
  await page.goto();
}

interface IStatus {
  mounted: boolean;
  mode: string;
  mountpoint_abs: string;
}

async function status(page: IJupyterLabPageFixture): Promise<IStatus> {
  return (await (await page.request.get('/algofs/status')).json()) as IStatus;
}

function item(page: IJupyterLabPageFixture, name: string) {
  return page.locator('.jp-DirListing-content .jp-DirListing-item', {
    has: page.locator('.jp-DirListing-itemText', { hasText: new RegExp(`^${name.replace(/\./g, '\\.')}$`) })
  });
}

async function goTo(page: IJupyterLabPageFixture, dir: string): Promise<void> {
  await page.evaluate(async d => {
    await window.jupyterapp.commands.execute('filebrowser:go-to-path', { path: d });
  }, dir);
  await expect.poll(() => page.filebrowser.getCurrentDirectory()).toBe(dir);
}

/** Right-click `name` (or the listing's empty area when null) and pick `label` from the context menu. */
async function fromMenu(page: IJupyterLabPageFixture, name: string | null, label: string): Promise<void> {
  if (name === null) {
    await page.locator('.jp-DirListing-content').click({ button: 'right', position: { x: 60, y: 400 } });
  } else {
    await item(page, name).click({ button: 'right' });
  }
  const entry = page.locator('.lm-Menu-item', {
    has: page.locator('.lm-Menu-itemLabel', { hasText: new RegExp(`^${label}$`) })
  });
  await expect(entry).toBeVisible();
  await entry.click();
}

/** Type `name` into the file browser's rename box (open after New Folder and Rename) and press Enter. */
async function typeName(page: IJupyterLabPageFixture, name: string): Promise<void> {
  const editor = page.locator('.jp-DirListing-editor');
  await expect(editor).toBeVisible();
  await editor.fill(name);
  await editor.press('Enter');
  await expect(item(page, name)).toBeVisible();
}

/** Delete `name` from the context menu; the dialog's text must be `wording`; accept or cancel it. */
async function deleteFromMenu(
  page: IJupyterLabPageFixture,
  name: string,
  wording: string,
  accept: boolean,
  shot: string
): Promise<void> {
  await fromMenu(page, name, 'Delete'); // "Delete" everywhere: the dialog says which
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('.jp-Dialog-body')).toHaveText(wording);
  await page.screenshot({ path: path.join(ARTIFACTS, shot) });
  await dialog.locator(accept ? '.jp-Dialog-button.jp-mod-accept' : '.jp-Dialog-button.jp-mod-reject').click();
  await expect(dialog).toBeHidden();
}

async function put(page: IJupyterLabPageFixture, apiPath: string, content: string | null): Promise<void> {
  const model = content === null ? { type: 'directory' } : { type: 'file', format: 'text', content };
  const response = await page.request.put(`/api/contents/${apiPath}`, { data: model });
  expect(response.ok(), await response.text()).toBeTruthy();
}

async function fileActions(page: IJupyterLabPageFixture, mode: string): Promise<void> {
  const { mountpoint_abs: mountpoint } = await status(page);
  const apiServer = path.join(path.dirname(path.dirname(mountpoint)), 'api-server');
  const folder = `${DATASETS}/ui-${mode}`;
  const stored = (name: string) => path.join(apiServer, 'data/demo/datasets', `ui-${mode}`, name);
  const shot = (n: number, what: string) => `file-actions-${mode}-${n}-${what}.png`;

  // A folder of the test's own: t.txt, and full/ holding a file and a folder with a file.
  await put(page, folder, null);
  await put(page, `${folder}/t.txt`, 'hello algofs\n');
  await put(page, `${folder}/full`, null);
  await put(page, `${folder}/full/a.txt`, 'a\n');
  await put(page, `${folder}/full/sub`, null);
  await put(page, `${folder}/full/sub/b.txt`, 'b\n');
  await goTo(page, folder);
  await expect(item(page, 't.txt')).toBeVisible();

  // New Folder (in the listing's context menu), named in place
  await fromMenu(page, null, 'New Folder');
  await typeName(page, 'made-here');
  expect(fs.statSync(stored('made-here')).isDirectory()).toBeTruthy();

  // Rename
  await fromMenu(page, 't.txt', 'Rename');
  await typeName(page, 'renamed.txt');
  await expect(item(page, 't.txt')).toHaveCount(0);
  expect(fs.readFileSync(stored('renamed.txt'), 'utf-8')).toBe('hello algofs\n');
  expect(fs.existsSync(stored('t.txt'))).toBeFalsy();

  // Duplicate
  await fromMenu(page, 'renamed.txt', 'Duplicate');
  await expect(item(page, 'renamed-Copy1.txt')).toBeVisible();
  expect(fs.readFileSync(stored('renamed-Copy1.txt'), 'utf-8')).toBe('hello algofs\n');

  // Copy, then Paste into made-here
  await fromMenu(page, 'renamed.txt', 'Copy');
  await item(page, 'made-here').dblclick();
  await expect.poll(() => page.filebrowser.getCurrentDirectory()).toBe(`${folder}/made-here`);
  await fromMenu(page, null, 'Paste');
  await expect(item(page, 'renamed.txt')).toBeVisible();
  expect(fs.readFileSync(stored('made-here/renamed.txt'), 'utf-8')).toBe('hello algofs\n');
  await page.screenshot({ path: path.join(ARTIFACTS, shot(1, 'pasted')) });
  await goTo(page, folder);

  // Delete a file: the dialog says it is permanent, and it is gone from the API server
  await deleteFromMenu(page, 'renamed-Copy1.txt',
    'Are you sure you want to permanently delete: renamed-Copy1.txt?', true, shot(2, 'delete-file-dialog'));
  await expect(item(page, 'renamed-Copy1.txt')).toHaveCount(0);
  expect(fs.existsSync(stored('renamed-Copy1.txt'))).toBeFalsy();

  // Delete a non-empty folder: the same, with everything in it
  await deleteFromMenu(page, 'full',
    'Are you sure you want to permanently delete: full?', true, shot(3, 'delete-folder-dialog'));
  await expect(item(page, 'full')).toHaveCount(0);
  expect(fs.existsSync(stored('full'))).toBeFalsy();
  await expect(page.locator('.jp-Dialog')).toHaveCount(0); // no error dialog either
  expect(fs.readdirSync(stored('')).sort()).toEqual(['made-here', 'renamed.txt']);
  await page.screenshot({ path: path.join(ARTIFACTS, shot(4, 'after')) });

  // Outside algofs/ JupyterLab's own wording (the server's delete_to_trash) is kept
  await put(page, `local-${mode}.txt`, 'local\n');
  await goTo(page, '');
  await deleteFromMenu(page, `local-${mode}.txt`,
    `Are you sure you want to move to trash: local-${mode}.txt?`, false, shot(5, 'delete-local-dialog'));
  await expect(item(page, `local-${mode}.txt`)).toBeVisible();
}

test('file browser actions inside the mount, delete said and done permanently', async ({ page }) => {
  await openLab(page);
  const mount = await page.request.post('/algofs/mount', { data: {} });
  expect(mount.ok()).toBeTruthy();
  await expect.poll(async () => (await status(page)).mounted, { timeout: 60000 }).toBe(true);
  expect((await status(page)).mode).toBe('fuse');
  try {
    await fileActions(page, 'fuse');
  } finally {
    // Leave the server as the other specs expect it: not mounted.
    await page.request.post('/algofs/unmount', { data: {} });
    await expect.poll(async () => (await status(page)).mounted, { timeout: 30000 }).toBe(false);
  }
});

test('@fallback file browser actions inside algofs/ without FUSE, delete said and done permanently', async ({
  page
}) => {
  await openLab(page);
  await expect.poll(async () => (await status(page)).mode, { timeout: 60000 }).toBe('fallback');
  await expect.poll(async () => (await page.request.get(`/api/contents/${DATASETS}`)).status()).toBe(200);
  await fileActions(page, 'fallback');
});
