/**
 * "Rename and Save" of a new notebook inside algofs/ (issue 25, item 4), in both modes: JupyterLab's first
 * save of an Untitled notebook asks for a name ("Rename file" → "Rename and Save"). Right after, the new
 * name is listed and the old one is gone, in the contents API and in the file browser, every time the
 * listing is read (it used to vanish for ~10 s: a listing that raced the rename was cached). The same
 * for a rename of the open notebook from the file browser's context menu.
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, DATASETS, goTo, item, listing, mount, openLab, patientLab, put, removeTree, unmount } from './journey-helpers';

patientLab();

const NEW_NAME = 'renamed-by-save.ipynb';
const BROWSER_NAME = 'renamed-in-browser.ipynb';

/** Stop the kernels of notebooks in `folder` (their working directory is there). */
async function stopKernelsIn(page: IJupyterLabPageFixture, folder: string): Promise<void> {
  const sessions = (await (await page.request.get('/api/sessions')).json()) as { id: string; path: string }[];
  for (const session of sessions.filter(s => s.path.startsWith(`${folder}/`))) {
    await page.request.delete(`/api/sessions/${session.id}`);
  }
}

for (const mode of ['fuse', 'fallback']) {
  const tag = mode === 'fallback' ? '@fallback ' : '';
  test(`${tag}Rename and Save of a new notebook in algofs/ lists the new name at once (${mode})`, async ({ page }) => {
    test.setTimeout(300000);
    await openLab(page);
    if (mode === 'fuse') {
      await mount(page);
    }
    const folder = `${DATASETS}/rename-save-${mode}`;
    try {
      await removeTree(page, folder); // a failed earlier run's
      await put(page, folder, null);
      await goTo(page, folder);

      await page.evaluate(async cwd => {
        await window.jupyterapp.commands.execute('notebook:create-new', { cwd, kernelName: 'python3' });
      }, folder);
      await expect(page.getByRole('tab', { name: /Untitled\.ipynb/ })).toBeVisible({ timeout: 60000 });
      await expect(item(page, 'Untitled.ipynb')).toBeVisible({ timeout: 30000 });

      await page.menu.clickMenuItem('File>Save Notebook');
      const dialog = page.locator('.jp-Dialog');
      await expect(dialog).toContainText('Rename file', { timeout: 30000 });
      await dialog.locator('input:not([type="checkbox"])').fill(NEW_NAME);
      await page.screenshot({ path: path.join(ARTIFACTS, `rename-save-${mode}-01-dialog.png`) });
      await dialog.getByRole('button', { name: 'Rename and Save' }).click();
      await expect(dialog).toBeHidden({ timeout: 30000 });
      await expect(page.getByRole('tab', { name: new RegExp(NEW_NAME.replace('.', '\\.')) })).toBeVisible({ timeout: 60000 });
      await expect(page.locator('.jp-Document .jp-mod-dirty')).toHaveCount(0, { timeout: 30000 }); // saved

      // At once and on every read after: the new name only, never neither.
      await expect(item(page, NEW_NAME)).toBeVisible({ timeout: 30000 });
      for (let read = 0; read < 6; read++) {
        expect(await listing(page, folder)).toEqual([NEW_NAME]);
        await page.filebrowser.refresh();
        await expect(item(page, NEW_NAME)).toHaveCount(1);
        await expect(item(page, 'Untitled.ipynb')).toHaveCount(0);
        await page.waitForTimeout(500); // spread the reads over a few seconds
      }
      await page.screenshot({ path: path.join(ARTIFACTS, `rename-save-${mode}-02-listed.png`) });

      // Renamed again from the file browser (context menu → Rename) while it is open: the same.
      await item(page, NEW_NAME).click({ button: 'right' });
      await page.locator('.lm-Menu-item', { has: page.locator('.lm-Menu-itemLabel', { hasText: /^Rename$/ }) }).click();
      const editor = page.locator('.jp-DirListing-editor');
      await expect(editor).toBeVisible();
      await editor.fill(BROWSER_NAME);
      await editor.press('Enter');
      await expect(item(page, BROWSER_NAME)).toBeVisible({ timeout: 30000 });
      await expect(page.getByRole('tab', { name: new RegExp(BROWSER_NAME.replace('.', '\\.')) })).toBeVisible();
      for (let read = 0; read < 6; read++) {
        expect(await listing(page, folder)).toEqual([BROWSER_NAME]);
        await page.filebrowser.refresh();
        await expect(item(page, BROWSER_NAME)).toHaveCount(1);
        await expect(item(page, NEW_NAME)).toHaveCount(0);
        await page.waitForTimeout(500);
      }
      await page.screenshot({ path: path.join(ARTIFACTS, `rename-save-${mode}-03-renamed-in-browser.png`) });
    } finally {
      await stopKernelsIn(page, folder);
      await removeTree(page, folder);
      if (mode === 'fuse') {
        await unmount(page);
      }
    }
  });
}
