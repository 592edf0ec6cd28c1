/**
 * Where a file-browser path inside the mount lives: its data:// (or connector) URI and its absolute path.
 *
 * The mount's layout (algofs_jupyter/mount/layout.py): <mount>/data/<user>/<collection>/… is data://<user>/…,
 * <mount>/<connector>/… (s3, dropbox+work, …; api_paths.CONNECTOR_ID) is <connector>://…; the mount root,
 * <mount>/data itself, <mount>/algorithms and anything else have no URI.
 */
const CONNECTOR_ID = /^(azureblob|dropbox|gs|s3)(\+[a-zA-Z0-9]+)?$/;

function strip(path: string): string {
  return path.replace(/^[^/:]*:/, '').replace(/^\/+|\/+$/g, '');
}

/** The path below the mount root (`''` for the root itself), or null for a path outside the mount. */
export function insideMount(path: string, mountpoint: string): string | null {
  const item = strip(path);
  const mount = strip(mountpoint);
  if (item === mount) {
    return '';
  }
  return mount === '' || item.startsWith(`${mount}/`) ? item.slice(mount === '' ? 0 : mount.length + 1) : null;
}

/** `data://demo/datasets/cities.csv` for `algofs/data/demo/datasets/cities.csv`; null when it has none. */
export function dataUri(path: string, mountpoint: string): string | null {
  const rest = insideMount(path, mountpoint);
  if (!rest) {
    return null;
  }
  const slash = rest.indexOf('/');
  if (slash < 0) {
    return null; // the mount's top-level folders (data, s3, algorithms) are not addresses
  }
  const head = rest.slice(0, slash);
  const tail = rest.slice(slash + 1);
  if (head === 'data') {
    return tail.startsWith('.my') && (tail === '.my' || tail.startsWith('.my/')) ? null : `data://${tail}`;
  }
  return CONNECTOR_ID.test(head) ? `${head}://${tail}` : null;
}

/** The absolute path on the server's machine of an item below the mount point; null for any other. */
export function absolutePath(path: string, mountpoint: string, mountpointAbs: string | undefined): string | null {
  const rest = insideMount(path, mountpoint);
  if (!rest || !mountpointAbs) {
    return null; // outside the mount, or the mount point itself (JupyterLab's Copy Path is enough there)
  }
  return `${mountpointAbs.replace(/\/+$/, '')}/${rest}`;
}
