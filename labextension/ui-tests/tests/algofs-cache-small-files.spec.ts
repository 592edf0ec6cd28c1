/**
 * The panel's cache section shows the small files held in memory (issue 25, item 9): after a small file
 * is opened through the mount the block cache may still say "0 B", but the "In memory" row counts the
 * file and its bytes (the REST cache stats' small_files).
 */
import { expect, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, DATASETS, goTo, item, openLab, patientLab, unmount } from './journey-helpers';

patientLab();

test('the panel\'s cache table shows small files held in memory', async ({ page }) => {
  test.setTimeout(300000);
  await openLab(page);
  await page.sidebar.openTab('algofs-panel');
  const panel = page.locator('#algofs-panel');
  await panel.getByTestId('algofs-mount').click();
  await expect(panel.getByTestId('algofs-mount-state')).toHaveText('Mounted', { timeout: 90000 });
  try {
    // Open a small file from the file browser: the mount reads it whole into memory.
    await goTo(page, DATASETS);
    await item(page, 'cities.csv').dblclick();
    await expect(page.locator('.jp-MainAreaWidget .jp-CSVViewer').first()).toBeVisible({ timeout: 30000 });

    const stats = await (await page.request.get('/algofs/cache')).json();
    expect(stats.small_files.files).toBeGreaterThanOrEqual(1);
    await page.sidebar.openTab('algofs-panel');
    const small = panel.getByTestId('algofs-cache-small');
    // The panel polls its status while shown; the row follows the server's numbers.
    await expect(small).toHaveText(/^[1-9]\d* small file\(s\), [1-9][\d.]* (B|KiB|MiB)$/, { timeout: 30000 });
    await panel.getByTestId('algofs-cache-stats').screenshot({ path: path.join(ARTIFACTS, 'cache-small-files-01.png') });
  } finally {
    await unmount(page);
  }
});
