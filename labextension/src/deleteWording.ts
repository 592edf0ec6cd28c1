/**
 * JupyterLab's delete dialog tells the truth inside the mount: "permanently delete" there, and what the
 * server does (normally "move to trash") everywhere else.
 *
 * JupyterLab words deletes from one page-wide option, `delete_to_trash` (jupyterlab's labapp copies the
 * contents manager's setting into the page config): the file browser's menu entry, fixed when the page
 * loads, and the dialog of `DirListing.delete()`, which reads the option synchronously before its first
 * await. The server extension (algofs_jupyter/jupyter/mount_deletes.py, where deletes under the mount point
 * are made permanent) serves the page with `delete_to_trash: false`, so the entry reads "Delete", and the
 * server's own setting as `algofs_delete_to_trash`. Here each delete sets the option for its selection
 * while the dialog is made, and puts it back at once.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { DirListing } from '@jupyterlab/filebrowser';

const OPTION = 'delete_to_trash';
const SERVER_SETTING = 'algofs_delete_to_trash';
let installed = false;

/** Word the delete dialog of every file browser: permanent when a selected item is on the mount. */
export function wordDeletesOnMount(onMount: (path: string) => boolean): void {
  if (installed) {
    return;
  }
  installed = true;
  const original = DirListing.prototype.delete;
  DirListing.prototype.delete = function (this: DirListing): Promise<void> {
    const paths = Array.from(this.selectedItems(), item => item.path);
    const elsewhere = PageConfig.getOption(SERVER_SETTING) || PageConfig.getOption(OPTION);
    const before = PageConfig.setOption(OPTION, paths.some(onMount) ? 'false' : elsewhere);
    try {
      return original.call(this);
    } finally {
      PageConfig.setOption(OPTION, before);
    }
  };
}
