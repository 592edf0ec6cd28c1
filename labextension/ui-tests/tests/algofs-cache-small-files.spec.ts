/**
 * The panel's cache section shows the small files held in memory (issue 25, item 9): after a small file
 * is opened through the mount the block cache may still say "0 B", but the "In memory" row counts the
 * file and its bytes (the REST cache stats' small_files). A large file of the embedded server (on this
 * machine) is read from the server's own file: the "Server's files" row counts it (server_files).
 */
import { expect, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, DATASETS, goTo, item, openLab, patientLab, unmount } from './journey-helpers';

patientLab();

test('the panel\'s cache table shows small files held in memory, and large files read from the server\'s own', async ({ page }) => {
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

    // A large file read through the mount (its first MiB, by Jupyter's /files handler): the embedded API
    // server is on this machine, so the mount reads the server's own file and the panel says so.
    expect(stats.server_files?.reads ?? 0).toBe(0);
    const read = await page.request.get('/files/algofs/data/demo/large/large.bin', {
      headers: { Range: 'bytes=0-1048575' }
    });
    expect(read.status()).toBeLessThan(300);
    await expect(panel.getByTestId('algofs-cache-server')).toHaveText(/^[1-9][\d.]* (KiB|MiB|GiB) read, not cached$/, {
      timeout: 30000
    });
  } finally {
    await unmount(page);
  }
});
