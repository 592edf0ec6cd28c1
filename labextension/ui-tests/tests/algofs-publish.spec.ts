/**
 * Publishing a notebook cell from the AlgoFS panel (issue 27, item 3): a good cell becomes a version the
 * panel lists, a cell that does not build shows the build's log in the panel, marked as an error.
 * Against the real Jupyter server of run.sh and its embedded demo API server (real sandboxed builds).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

const ARTIFACTS = process.env.ALGOFS_ARTIFACTS || 'test-results';

test.use({ autoGoto: true });

test('publish a cell from the panel; a failed build shows its log', async ({ page }: { page: IJupyterLabPageFixture }) => {
  test.setTimeout(240000); // two sandboxed builds and a kernel on a loaded 2-core box
  const name = `panel_${Date.now().toString(36)}`;
  await page.notebook.createNew('publish.ipynb');
  await page.notebook.setCell(0, 'code', 'def apply(input):\n    return f"published {input}"');

  await page.sidebar.openTab('algofs-panel');
  const panel = page.locator('#algofs-panel');
  await expect(panel).toBeVisible();
  await panel.getByTestId('algofs-publish-name').fill(`demo/${name}`);
  await page.notebook.selectCells(0);

  await panel.getByTestId('algofs-publish').click();
  const meta = panel.getByTestId('algofs-output-meta');
  const output = panel.getByTestId('algofs-pipe-output');
  await expect(meta).toContainText(`Published demo/${name} 0.1.0`, { timeout: 60000 });
  await expect(output).not.toHaveClass(/jp-mod-error/);
  await expect(panel.locator(`[data-algorithm="demo/${name}"]`)).toBeVisible(); // the list was reloaded

  // The same algorithm, from a cell that does not build: the build's log, not a panel error.
  await page.notebook.setCell(0, 'code', 'def apply(input:\n    return 1');
  await page.notebook.selectCells(0);
  await panel.getByTestId('algofs-publish').click();
  await expect(meta).toContainText(`Build failed for demo/${name}`, { timeout: 60000 });
  await expect(output).toHaveClass(/jp-mod-error/);
  await expect(output).toContainText('SyntaxError');
  await expect(output).toContainText('algorithm.py');
  await expect(output).not.toContainText('algorithm_runner'); // the author's frames only
  await expect(panel.getByTestId('algofs-error')).toBeHidden();
  await output.screenshot({ path: path.join(ARTIFACTS, 'publish-build-log.png') });
});
