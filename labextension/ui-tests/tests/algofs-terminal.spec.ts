/**
 * The terminal's working directory (issue 25, item 2): Launcher → Terminal starts in the server's root
 * directory, the folder holding the mount, so the README's `ls algofs/...` commands work as typed.
 * jupyter_server_terminals opens the top folder's terminal (cwd "") in the server's working directory, so
 * that must be the root: `algofs demo` starts JupyterLab there, and so does run.sh.
 * The terminal's text is read from xterm's buffer (what the user sees on screen).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import * as path from 'path';

import { ARTIFACTS, mount, openLab, patientLab, status, unmount } from './journey-helpers';

patientLab();

/** The active terminal's whole buffer (scrollback and screen) as text. */
async function terminalText(page: IJupyterLabPageFixture): Promise<string> {
  return page.evaluate(() => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const widget = window.jupyterapp.shell.currentWidget as any;
    const term = widget?.content?._term;
    if (!term) {
      return document.querySelector('.jp-Terminal .xterm-rows')?.textContent ?? '';
    }
    const buffer = term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < buffer.length; i++) {
      lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    }
    return lines.join('\n');
  });
}

test('Launcher → Terminal starts where `ls algofs` works', async ({ page }) => {
  test.setTimeout(300000);
  await openLab(page);
  await mount(page);
  let terminalName: string | null = null;
  try {
    // The launcher of the file browser's top folder (the server's root), as after start-up.
    await page.evaluate(async () => {
      await window.jupyterapp.commands.execute('filebrowser:go-to-path', { path: '' });
      await window.jupyterapp.commands.execute('launcher:create');
    });
    // The new launcher's card (the start-up launcher, in its own tab, may be behind it).
    const card = page.locator('.jp-LauncherCard[title="Start a new terminal session"]:visible').first();
    await expect(card).toBeVisible({ timeout: 30000 });
    await card.click();
    const terminal = page.locator('.jp-Terminal');
    await expect(terminal).toBeVisible({ timeout: 60000 });
    await expect.poll(async () => (await terminalText(page)).trim(), { timeout: 60000 }).not.toBe(''); // a prompt
    terminalName = await page.evaluate(() => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const widget = window.jupyterapp.shell.currentWidget as any;
      return widget?.content?.session?.name ?? null;
    });

    await terminal.click();
    // The marker is computed by the shell, so it appears only as output, never as the echoed command.
    await page.keyboard.type('ls algofs && echo "ls-ok-$((6*7))"; pwd\n');
    await expect.poll(() => terminalText(page), { timeout: 60000 }).toContain('ls-ok-42');
    await page.keyboard.type('ls algofs/data/demo\n');
    await expect.poll(() => terminalText(page), { timeout: 60000 }).toMatch(/^.*\bdatasets\b.*$/m);
    const text = await terminalText(page);
    expect(text).not.toContain('No such file or directory');
    expect(text).toContain(path.dirname((await status(page)).mountpoint_abs)); // pwd printed the server's root, the mount's parent
    await page.screenshot({ path: path.join(ARTIFACTS, 'terminal-01-ls-algofs.png') });
  } finally {
    // A terminal left running would hold nothing in the mount, but stop it like a user closing it.
    if (terminalName) {
      await page.request.delete(`/api/terminals/${terminalName}`);
    }
    await unmount(page);
  }
});
