/**
 * algofs-jupyter: the AlgoFS sidebar and its commands.
 *
 * Commands are the single way actions happen (panel buttons, palette, context menu all land in
 * the panel's methods), so every action shows its state and errors in the same place.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { INotebookTracker } from '@jupyterlab/notebook';
import { deleteIcon, folderIcon, runIcon } from '@jupyterlab/ui-components';

import { EditorTextSource } from './editorText';
import { algofsIcon } from './icons';
import { AlgofsPanel } from './panel';

export const CommandIDs = {
  showPanel: 'algofs:show-panel',
  mount: 'algofs:mount',
  unmount: 'algofs:unmount',
  clearCache: 'algofs:clear-cache',
  openInFileBrowser: 'algofs:open-in-file-browser',
  sendSelection: 'algofs:send-selection'
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

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'algofs-jupyter:plugin',
  description: 'AlgoFS sidebar: mount Algorithmia data as files, browse it, pipe text to algorithms.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, INotebookTracker, IEditorTracker],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    notebooks: INotebookTracker | null,
    editors: IEditorTracker | null
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
