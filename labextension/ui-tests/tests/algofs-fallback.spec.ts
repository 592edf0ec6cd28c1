/**
 * Without FUSE (run.sh starts this server with ALGOFS_DISABLE_FUSE=1, as on Binder): the panel says
 * so, with the reason, and algorithms still work because they do not need the mount.
 */
import { expect, test } from '@jupyterlab/galata';
import * as path from 'path';

const ARTIFACTS = process.env.ALGOFS_ARTIFACTS || 'test-results';

test('@fallback no FUSE: the panel shows the fallback and its reason, pipes still work', async ({ page }) => {
  await page.sidebar.openTab('algofs-panel');
  const panel = page.locator('#algofs-panel');
  await expect(panel).toBeVisible();

  const state = panel.getByTestId('algofs-mount-state');
  await expect(state).toHaveText('Fallback');
  await expect(state).toHaveAttribute('data-mode', 'fallback');
  await expect(panel.getByTestId('algofs-reason')).toContainText('ALGOFS_DISABLE_FUSE');
  await expect(panel.getByTestId('algofs-open')).toBeDisabled();

  await panel.locator('[data-algorithm="demo/echo"] .jp-AlgofsPanel-treeName').click();
  await panel.getByTestId('algofs-input').fill('no mount needed');
  await panel.getByTestId('algofs-run-input').click();
  await expect(panel.getByTestId('algofs-pipe-output')).toHaveText('no mount needed');
  await panel.screenshot({ path: path.join(ARTIFACTS, '10-fallback.png') });
});
