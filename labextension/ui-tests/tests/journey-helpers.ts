/**
 * Shared steps of the issue 25 journeys (algofs-terminal, -rename-save, -refused-names, -sidebar-icon,
 * -cache-small-files): start JupyterLab patiently, read the extension's status, move the file browser, find
 * a listed item. Not a spec (Playwright runs only *.spec.ts).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';

export const ARTIFACTS = process.env.ALGOFS_ARTIFACTS || 'test-results';
export const DATASETS = 'algofs/data/demo/datasets';

/**
 * Galata's fixtures with start-up waits of 2 minutes instead of 15 s (a loaded 2-core machine takes
 * seconds per plugin); call in a spec's top level, then `await openLab(page)` in each test.
 */
export function patientLab(): void {
  test.use({
    autoGoto: false,
    waitForApplication: async ({ baseURL }, use) => {
      await use(async (page, helpers) => {
        await page.locator('#jupyterlab-splash').waitFor({ state: 'detached', timeout: 120000 });
        await helpers.waitForCondition(() => helpers.activity.isTabActive('Launcher'), 120000);
        await helpers.activity.activateTab('Launcher');
      });
    }
  });
}

export async function openLab(page: IJupyterLabPageFixture): Promise<void> {
  const lab = page as unknown as { waitForAppStarted: () => Promise<unknown> };
  lab.waitForAppStarted = async () => {
    await page.page.waitForFunction(() => typeof window.jupyterapp === 'object', undefined, { timeout: 120000 });
    await page.page.evaluate(async () => {
      await window.jupyterapp.started;
    });
  };
  await page.goto();
}

export interface IStatus {
  mounted: boolean;
  mode: string;
  mountpoint: string;
  mountpoint_abs: string;
}

export async function status(page: IJupyterLabPageFixture): Promise<IStatus> {
  return (await (await page.request.get('/algofs/status')).json()) as IStatus;
}

/** Mount through the REST API (fuse mode) and wait until mounted. */
export async function mount(page: IJupyterLabPageFixture): Promise<void> {
  const response = await page.request.post('/algofs/mount', { data: {} });
  expect(response.ok(), await response.text()).toBeTruthy();
  await expect.poll(async () => (await status(page)).mounted, { timeout: 90000 }).toBe(true);
  expect((await status(page)).mode).toBe('fuse');
}

/** Leave the server as the other specs expect it: not mounted. */
export async function unmount(page: IJupyterLabPageFixture): Promise<void> {
  await page.request.post('/algofs/unmount', { data: { force: true } }); // kernels a spec left inside are moved out
  await expect.poll(async () => (await status(page)).mounted, { timeout: 90000 }).toBe(false);
}

export function item(page: IJupyterLabPageFixture, name: string) {
  return page.locator('.jp-DirListing-content .jp-DirListing-item', {
    has: page.locator('.jp-DirListing-itemText', {
      hasText: new RegExp(`^${name.replace(/[.?#*+()[\]]/g, '\\$&')}$`)
    })
  });
}

export async function goTo(page: IJupyterLabPageFixture, dir: string): Promise<void> {
  await page.evaluate(async d => {
    await window.jupyterapp.commands.execute('filebrowser:go-to-path', { path: d });
  }, dir);
  await expect.poll(() => page.filebrowser.getCurrentDirectory()).toBe(dir);
}

/** PUT a text file (or a folder when content is null) through the contents API. */
export async function put(page: IJupyterLabPageFixture, apiPath: string, content: string | null): Promise<void> {
  const model = content === null ? { type: 'directory' } : { type: 'file', format: 'text', content };
  const response = await page.request.put(`/api/contents/${apiPath}`, { data: model });
  expect(response.ok(), await response.text()).toBeTruthy();
}

/** The names the contents API lists in `dir` now. */
export async function listing(page: IJupyterLabPageFixture, dir: string): Promise<string[]> {
  const response = await page.request.get(`/api/contents/${dir}?content=1`);
  expect(response.ok(), await response.text()).toBeTruthy();
  return ((await response.json()).content as { name: string }[]).map(entry => entry.name).sort();
}

/** Delete a file or a folder and everything in it through the contents API (cleanup). */
export async function removeTree(page: IJupyterLabPageFixture, apiPath: string): Promise<void> {
  const response = await page.request.get(`/api/contents/${apiPath}?content=1`);
  if (!response.ok()) {
    return;
  }
  const model = await response.json();
  if (model.type === 'directory') {
    for (const entry of model.content as { path: string }[]) {
      await removeTree(page, entry.path);
    }
  }
  await page.request.delete(`/api/contents/${apiPath}`);
}
