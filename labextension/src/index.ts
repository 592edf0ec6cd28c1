/**
 * algofs-jupyter: the AlgoFS sidebar and its commands.
 *
 * Commands are the single way actions happen (panel buttons, palette, context menu all land in
 * the panel's methods), so every action shows its state and errors in the same place.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette, Notification } from '@jupyterlab/apputils';
import { FileBrowser, IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { INotebookTracker } from '@jupyterlab/notebook';
import { deleteIcon, folderIcon, runIcon } from '@jupyterlab/ui-components';

import { wordDeletesOnMount } from './deleteWording';
import { EditorTextSource } from './editorText';
import { algofsIcon } from './icons';
import { absolutePath, dataUri, insideMount } from './mountPaths';
import { AlgofsPanel } from './panel';

export const CommandIDs = {
  showPanel: 'algofs:show-panel',
  mount: 'algofs:mount',
  unmount: 'algofs:unmount',
  clearCache: 'algofs:clear-cache',
  openInFileBrowser: 'algofs:open-in-file-browser',
  sendSelection: 'algofs:send-selection',
  copyDataUri: 'algofs:copy-data-uri',
  copyAbsolutePath: 'algofs:copy-absolute-path'
} as const;

const CATEGORY = 'AlgoFS';

function addCommands(app: JupyterFrontEnd, panel: AlgofsPanel): void {
  const { commands, shell } = app;
  const show = () => shell.activateById(panel.id);

  commands.addCommand(CommandIDs.showPanel, {
    label: 'Show AlgoFS Panel',
    icon: algofsIcon,
    execute: () => show()
  });
  commands.addCommand(CommandIDs.mount, {
    label: 'Mount Algorithmia Data (AlgoFS)',
    caption: 'Mount data:// collections and algorithms into the server root',
    icon: algofsIcon,
    isEnabled: () => !panel.busy && !panel.status?.mounted,
    execute: async () => {
      show();
      await panel.mount();
    }
  });
  commands.addCommand(CommandIDs.unmount, {
    label: 'Unmount Algorithmia Data (AlgoFS)',
    isEnabled: () => !panel.busy && !!panel.status?.mounted,
    execute: async () => {
      show();
      await panel.unmount();
    }
  });
  commands.addCommand(CommandIDs.clearCache, {
    label: 'Clear AlgoFS Cache',
    icon: deleteIcon,
    isEnabled: () => !panel.busy && !!panel.status?.cache,
    execute: async () => {
      show();
      await panel.clearCache();
    }
  });
  commands.addCommand(CommandIDs.openInFileBrowser, {
    label: 'Open AlgoFS Mount in File Browser',
    icon: folderIcon,
    isEnabled: () => !!panel.status?.mounted,
    execute: () => panel.openInFileBrowser()
  });
  commands.addCommand(CommandIDs.sendSelection, {
    label: () =>
      panel.target
        ? `Send Selection to ${panel.target.user}/${panel.target.name} (AlgoFS)`
        : 'Send Selection to Algorithm (AlgoFS)',
    caption: 'Pipe the selected text, or the active cell, to the algorithm chosen in the AlgoFS panel',
    icon: runIcon,
    isEnabled: () => !panel.busy,
    execute: async () => {
      show();
      await panel.sendEditorText();
    }
  });

  panel.stateChanged.connect(() => {
    for (const id of Object.values(CommandIDs)) {
      commands.notifyCommandChanged(id);
    }
  });
}

/**
 * The file browser's "Copy data:// URI" and "Copy Absolute Path" (issue 25, item 6), for the one selected
 * item when it is inside the mount. The copied text is also shown in a notification.
 */
function addCopyCommands(app: JupyterFrontEnd, panel: AlgofsPanel, browsers: IFileBrowserFactory): void {
  const selectedPath = (): string | null => {
    const browser = browsers.tracker.currentWidget;
    if (!browser) {
      return null;
    }
    const items = Array.from(browser.selectedItems());
    return items.length === 1 ? items[0].path : null;
  };
  const uri = (): string | null => {
    const path = selectedPath();
    const status = panel.status;
    return path !== null && status?.mounted ? dataUri(path, status.mountpoint) : null;
  };
  const absolute = (): string | null => {
    const path = selectedPath();
    const status = panel.status;
    return path !== null && status?.mounted ? absolutePath(path, status.mountpoint, status.mountpoint_abs) : null;
  };
  const copy = (text: string | null, what: string) => {
    if (text === null) {
      return;
    }
    Clipboard.copyToSystem(text);
    Notification.success(`Copied ${what}: ${text}`, { autoClose: 5000 });
  };
  app.commands.addCommand(CommandIDs.copyDataUri, {
    label: 'Copy data:// URI',
    caption: "Copy the item's Algorithmia URI (data://user/collection/…, s3://…) to the clipboard",
    isVisible: () => uri() !== null,
    execute: () => copy(uri(), 'URI')
  });
  app.commands.addCommand(CommandIDs.copyAbsolutePath, {
    label: 'Copy Absolute Path',
    caption: "Copy the item's absolute path on the mount (works from any working directory)",
    isVisible: () => absolute() !== null,
    execute: () => copy(absolute(), 'absolute path')
  });
  // The panel polls only while shown: read the status again when a file browser moves, so the entries
  // know the mount point (and whether it is mounted) without the panel ever having been opened.
  const watch = (browser: FileBrowser) => {
    browser.model.pathChanged.connect(() => void panel.refreshStatus());
  };
  browsers.tracker.forEach(watch);
  browsers.tracker.widgetAdded.connect((_, browser) => watch(browser));
  void panel.refreshStatus();
  const selector = '.jp-DirListing-item[data-isdir]';
  app.contextMenu.addItem({ command: CommandIDs.copyDataUri, selector, rank: 14 });
  app.contextMenu.addItem({ command: CommandIDs.copyAbsolutePath, selector, rank: 14 });
}


const plugin: JupyterFrontEndPlugin<void> = {
  id: 'algofs-jupyter:plugin',
  description: 'AlgoFS sidebar: mount Algorithmia data as files, browse it, pipe text to algorithms.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, INotebookTracker, IEditorTracker, IFileBrowserFactory],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    notebooks: INotebookTracker | null,
    editors: IEditorTracker | null,
    browsers: IFileBrowserFactory | null
  ) => {
    const panel = new AlgofsPanel({
      textSource: new EditorTextSource(app.shell, notebooks, editors),
      openPath: async (path: string) => {
        // go-to-path only logs failures; check first so the panel can show them.
        const model = await app.serviceManager.contents.get(path, { content: false });
        if (model.type !== 'directory') {
          throw new Error(`${path} is not a directory`);
        }
        await app.commands.execute('filebrowser:go-to-path', { path: `/${path}` });
      }
    });
    app.shell.add(panel, 'left', { rank: 600, type: 'AlgoFS' });
    restorer?.add(panel, 'algofs-panel');
    addCommands(app, panel);
    if (browsers) {
      addCopyCommands(app, panel, browsers);
    }
    // Deletes under the mount point are permanent (mount_deletes.py); the dialog says so there.
    wordDeletesOnMount(path => !!panel.status && insideMount(path, panel.status.mountpoint) !== null);

    if (palette) {
      for (const command of [
        CommandIDs.showPanel,
        CommandIDs.mount,
        CommandIDs.unmount,
        CommandIDs.clearCache,
        CommandIDs.openInFileBrowser,
        CommandIDs.sendSelection
      ]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }
    app.contextMenu.addItem({ command: CommandIDs.sendSelection, selector: '.jp-Notebook .jp-Cell', rank: 20 });
    app.contextMenu.addItem({ command: CommandIDs.sendSelection, selector: '.jp-FileEditor', rank: 20 });
  }
};

export default plugin;
