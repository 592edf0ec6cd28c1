/**
 * A refused name's message in the browser (issue 25, item 5), in both modes: uploading or renaming to
 * `what?.txt` in algofs/data/demo/datasets shows a dialog naming the rule ("`?` and `#` can't be in
 * names on this storage …", not a 500 "Invalid argument" nor "Unknown error renaming file"), and New
 * Folder in algofs/data says where folders go (not a bare "Permission denied").
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, DATASETS, goTo, item, listing, mount, openLab, patientLab, put, removeTree, unmount } from './journey-helpers';

patientLab();

/** The error dialog now shown must contain every one of `texts`; screenshot it, then close it. */
async function expectDialog(page: IJupyterLabPageFixture, texts: string[], shot: string): Promise<void> {
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toBeVisible({ timeout: 30000 });
  for (const text of texts) {
    await expect(dialog).toContainText(text);
  }
  await expect(dialog).not.toContainText('Unknown error');
  await expect(dialog).not.toContainText('Invalid argument');
  await expect(dialog).not.toContainText('%%'); // the rule's "%XX escapes" as written
  await page.screenshot({ path: path.join(ARTIFACTS, shot) });
  await dialog.locator('.jp-Dialog-button').last().click();
  await expect(dialog).toBeHidden();
}

const RULE = "`?` and `#` can't be in names on this storage, nor `/`, `%XX` escapes (e.g. %41)";

for (const mode of ['fuse', 'fallback']) {
  const tag = mode === 'fallback' ? '@fallback ' : '';
  test(`${tag}a refused name's dialog names the rule (${mode})`, async ({ page }) => {
    test.setTimeout(300000);
    await openLab(page);
    if (mode === 'fuse') {
      await mount(page);
    }
    const folder = `${DATASETS}/refused-${mode}`;
    try {
      await removeTree(page, folder);
      await put(page, folder, null);
      await put(page, `${folder}/scratch.txt`, 'hello\n');
      await goTo(page, folder);
      await expect(item(page, 'scratch.txt')).toBeVisible({ timeout: 30000 });

      // Upload what?.txt with the toolbar's Upload button.
      const chooser = page.waitForEvent('filechooser');
      await page.locator('.jp-FileBrowser-toolbar [data-jp-item-name="uploader"] button').click();
      await (await chooser).setFiles({ name: 'what?.txt', mimeType: 'text/plain', buffer: Buffer.from('what\n') });
      await expectDialog(page, [RULE, 'what?.txt'], `refused-names-${mode}-01-upload.png`);

      // Rename scratch.txt to what?.txt in place.
      await item(page, 'scratch.txt').click({ button: 'right' });
      await page.locator('.lm-Menu-item', { has: page.locator('.lm-Menu-itemLabel', { hasText: /^Rename$/ }) }).click();
      const editor = page.locator('.jp-DirListing-editor');
      await expect(editor).toBeVisible();
      await editor.fill('what?.txt');
      await editor.press('Enter');
      await expectDialog(page, [RULE, 'what?.txt'], `refused-names-${mode}-02-rename.png`);
      expect(await listing(page, folder)).toEqual(['scratch.txt']); // nothing made, nothing moved

      // New Folder in algofs/data: the dialog says where folders go.
      await goTo(page, 'algofs/data');
      await page.locator('.jp-FileBrowser-toolbar [data-jp-item-name="new-directory"] button').click();
      await expectDialog(
        page,
        ["folders can be made only in a user's folder data/<user>/"],
        `refused-names-${mode}-03-new-folder.png`
      );
      expect(await listing(page, 'algofs/data')).not.toContain('Untitled Folder');
    } finally {
      await removeTree(page, folder);
      if (mode === 'fuse') {
        await unmount(page);
      }
    }
  });
}
