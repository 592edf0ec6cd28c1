/**
 * Unmount with a notebook open inside `algofs/` (issue 25, item 3). Before: "Unmounting…" for ~20 s with
 * every button disabled, then the kernel failed with ENOTCONN on os.getcwd() even after Mount. Now the
 * panel says which kernel holds the mount and offers "Unmount anyway", which moves the kernel out; the
 * next Mount moves it back, and the notebook keeps running without a restart.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const ARTIFACTS = process.env.ALGOFS_ARTIFACTS || 'test-results';
const PANEL_ID = 'algofs-panel';
const NOTEBOOK = 'algofs/data/demo/datasets/busy-unmount.ipynb';

test.use({ autoGoto: true });

async function cwdOfKernel(page: IJupyterLabPageFixture): Promise<string> {
  await page.notebook.setCell(0, 'code', 'import os\nos.getcwd()');
  await page.notebook.runCell(0);
  return (await page.notebook.getCellTextOutput(0))?.join('') ?? '';
}

test('a notebook open inside the mount: unmount is explained, and the kernel survives it', async ({ page }) => {
  await page.request.post('/algofs/mount', { data: {} });
  await expect
    .poll(async () => ((await (await page.request.get('/algofs/status')).json()) as { mounted: boolean }).mounted, {
      timeout: 60000
    })
    .toBe(true);
  const created = await page.request.put(`/api/contents/${NOTEBOOK}`, {
    data: { type: 'notebook', format: 'json', content: {
        cells: [],
        metadata: { kernelspec: { name: 'python3', display_name: 'Python 3 (ipykernel)', language: 'python' } },
        nbformat: 4,
        nbformat_minor: 5
      } }
  });
  expect(created.ok()).toBeTruthy();
  try {
    await page.evaluate(async file => {
      await window.jupyterapp.commands.execute('docmanager:open', { path: file, factory: 'Notebook' });
    }, NOTEBOOK);
    await expect(page.getByRole('tab', { name: /busy-unmount\.ipynb/ })).toBeVisible({ timeout: 60000 });
    await page.notebook.activate('busy-unmount.ipynb');
    await page.notebook.addCell('code', '');
    expect(await cwdOfKernel(page)).toContain('algofs/data/demo/datasets');

    await page.sidebar.openTab(PANEL_ID);
    const panel = page.locator(`#${PANEL_ID}`);
    const state = panel.getByTestId('algofs-mount-state');
    await expect(state).toHaveText('Mounted');

    // Unmount: refused at once, naming the notebook whose kernel holds the mount.
    await panel.getByTestId('algofs-unmount').click();
    const busy = panel.getByTestId('algofs-busy');
    await expect(busy).toContainText('busy-unmount.ipynb');
    await expect(busy).toContainText('Unmount anyway');
    await expect(state).toHaveText('Mounted');
    await expect(panel.getByTestId('algofs-unmount-anyway')).toBeVisible();
    await page.screenshot({ path: path.join(ARTIFACTS, 'busy-unmount-01-refused.png') });

    // Unmount anyway: unmounted, and the kernel still answers os.getcwd() (moved to the server root).
    await panel.getByTestId('algofs-unmount-anyway').click();
    await expect(state).toHaveText('Not mounted', { timeout: 30000 });
    await expect(panel.getByTestId('algofs-unmount-anyway')).toBeHidden();
    const outside = await cwdOfKernel(page);
    expect(outside).not.toContain('Transport endpoint');
    expect(outside).not.toContain('algofs/data');
    await page.screenshot({ path: path.join(ARTIFACTS, 'busy-unmount-02-unmounted.png') });

    // Mount again: the kernel is back beside its notebook.
    await panel.getByTestId('algofs-mount').click();
    await expect(state).toHaveText('Mounted', { timeout: 60000 });
    await expect(busy).toBeHidden();
    expect(await cwdOfKernel(page)).toContain('algofs/data/demo/datasets');
    await page.screenshot({ path: path.join(ARTIFACTS, 'busy-unmount-03-remounted.png') });
  } finally {
    // Leave the server as the next spec expects it: no kernel of ours, nothing mounted.
    await page.notebook.close(false).catch(() => undefined);
    const sessions = (await (await page.request.get('/api/sessions')).json()) as { id: string; path: string }[];
    for (const session of sessions.filter(s => s.path === NOTEBOOK)) {
      await page.request.delete(`/api/sessions/${session.id}`);
    }
    await page.request.delete(`/api/contents/${NOTEBOOK}`).catch(() => undefined);
    await page.request.post('/algofs/unmount', { data: { force: true } });
  }
});
