/**
 * The AlgoFS sidebar: mount state and controls, cache stats, the algorithm tree and a pipe box.
 *
 * Plain DOM on a Lumino widget: each part re-renders from the last server answer, so what the
 * panel shows is always what the REST API said, and every failure lands in the error bar.
 */
import {
  caretDownIcon,
  caretRightIcon,
  codeIcon,
  closeIcon,
  deleteIcon,
  folderIcon,
  refreshIcon,
  runIcon,
  usersIcon
} from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  AlgofsError,
  api,
  ContentType,
  formatBytes,
  formatResult,
  IAlgorithm,
  ICacheStats,
  IStatus,
  IOrganization
} from './api';
import { button, h, section } from './dom';
import { EditorTextSource } from './editorText';
import { algofsIcon } from './icons';

export interface ITarget {
  user: string;
  name: string;
  version: string;
}

export interface IPanelOptions {
  textSource: EditorTextSource;
  /** Show a server-root-relative directory in the default file browser. */
  openPath: (path: string) => Promise<void>;
  /** Status poll period while the panel is visible (ms). */
  pollInterval?: number;
}

const MODE_LABELS: Record<IStatus['mode'], string> = {
  fuse: 'Mounted',
  fallback: 'Fallback',
  unmounted: 'Not mounted',
  error: 'Error'
};

function targetName(target: ITarget): string {
  // "latest" is what an unversioned call means; keep the short form on the wire.
  const base = `${target.user}/${target.name}`;
  return target.version && target.version !== 'latest' ? `${base}/${target.version}` : base;
}

export class AlgofsPanel extends Widget {
  constructor(options: IPanelOptions) {
    super();
    this._options = options;
    this.id = 'algofs-panel';
    this.addClass('jp-AlgofsPanel');
    this.title.icon = algofsIcon;
    this.title.caption = 'AlgoFS: Algorithmia data and algorithms as files';

    this._errorBar = h('div', { className: 'jp-AlgofsPanel-error', role: 'alert', 'data-testid': 'algofs-error' });
    this._stateNode = h('div', { className: 'jp-AlgofsPanel-state' });
    this._cacheNode = h('div', { className: 'jp-AlgofsPanel-cache' });
    this._treeNode = h('ul', { className: 'jp-AlgofsPanel-tree', role: 'tree', 'data-testid': 'algofs-tree' });
    this._targetNode = h('div', { className: 'jp-AlgofsPanel-target', 'data-testid': 'algofs-target' });
    this._input = h('textarea', {
      className: 'jp-AlgofsPanel-input',
      rows: '3',
      placeholder: 'Input for the algorithm, or send the active cell / selection',
      'data-testid': 'algofs-input'
    });
    this._contentType = h(
      'select',
      { className: 'jp-mod-styled jp-AlgofsPanel-contentType', title: 'How the input is sent' },
      h('option', { value: 'text' }, 'text'),
      h('option', { value: 'json' }, 'json')
    );
    this._outputMeta = h('div', { className: 'jp-AlgofsPanel-outputMeta', 'data-testid': 'algofs-output-meta' });
    this._output = h('pre', { className: 'jp-AlgofsPanel-output', 'data-testid': 'algofs-pipe-output' });

    this._mountButton = button('Mount', {
      kind: 'accept',
      testid: 'algofs-mount',
      title: 'Mount Algorithmia data into the server root',
      onClick: () => void this.mount()
    });
    this._unmountButton = button('Unmount', {
      kind: 'reject',
      testid: 'algofs-unmount',
      title: 'Unmount and stop the filesystem daemon',
      onClick: () => void this.unmount()
    });
    this._forceUnmountButton = button('Unmount anyway', {
      kind: 'warn',
      testid: 'algofs-unmount-anyway',
      title: 'Move kernels out of the mount (back after the next Mount) and unmount',
      onClick: () => void this.unmount(true)
    });
    this._forceUnmountButton.style.display = 'none'; // shown only after an unmount was refused
    this._busyNode = h('div', { className: 'jp-AlgofsPanel-reason', 'data-testid': 'algofs-busy', role: 'status' });
    this._teamsNode = h('div', { className: 'jp-AlgofsPanel-detail', 'data-testid': 'algofs-teams' });
    this._openButton = button('Open in file browser', {
      icon: folderIcon,
      testid: 'algofs-open',
      title: 'Show the mount in the file browser',
      onClick: () => void this.openInFileBrowser()
    });
    this._clearButton = button('Clear cache', {
      icon: deleteIcon,
      testid: 'algofs-clear-cache',
      title: 'Drop every cached block (pending uploads are kept)',
      onClick: () => void this.clearCache()
    });
    this._sendButton = button('Send cell / selection', {
      icon: runIcon,
      kind: 'accept',
      testid: 'algofs-send-selection',
      title: 'Pipe the selected text, or the active cell, to the chosen algorithm',
      onClick: () => void this.sendEditorText()
    });
    this._publishName = h('input', {
      className: 'jp-mod-styled jp-AlgofsPanel-publishName',
      placeholder: 'user/name to publish as',
      title: 'The algorithm the cell is published as (created if needed)',
      'data-testid': 'algofs-publish-name'
    });
    this._publishButton = button('Publish cell', {
      testid: 'algofs-publish',
      title: 'Publish the active cell (it defines apply(input)) as a new version; a failed build shows its log',
      onClick: () => void this.publishEditorText()
    });
    this._runButton = button('Run input', {
      icon: runIcon,
      testid: 'algofs-run-input',
      title: 'Pipe the text typed above to the chosen algorithm',
      onClick: () => void this.pipe(this._input.value, 'typed input')
    });

    const refreshTree = button('', {
      icon: refreshIcon,
      testid: 'algofs-refresh-algorithms',
      title: 'Reload the algorithm list',
      onClick: () => void this.loadAlgorithms()
    });
    refreshTree.classList.add('jp-AlgofsPanel-iconButton');

    this.node.append(
      h(
        'header',
        { className: 'jp-AlgofsPanel-header' },
        algofsIcon.element({ tag: 'span', className: 'jp-AlgofsPanel-headerIcon' }),
        h('h2', { className: 'jp-AlgofsPanel-title' }, 'AlgoFS')
      ),
      this._errorBar,
      section(
        'Mount',
        'algofs-mount-section',
        this._stateNode,
        this._busyNode,
        this._teamsNode,
        h(
          'div',
          { className: 'jp-AlgofsPanel-buttons' },
          this._mountButton,
          this._unmountButton,
          this._forceUnmountButton,
          this._openButton
        )
      ),
      section('Cache', 'algofs-cache-section', this._cacheNode, h('div', { className: 'jp-AlgofsPanel-buttons' }, this._clearButton)),
      section(
        'Algorithms',
        'algofs-algorithms-section',
        h('div', { className: 'jp-AlgofsPanel-treeBar' }, this._targetNode, refreshTree),
        this._treeNode,
        this._input,
        h('div', { className: 'jp-AlgofsPanel-buttons' }, this._sendButton, this._runButton, this._contentType),
        h('div', { className: 'jp-AlgofsPanel-buttons' }, this._publishName, this._publishButton),
        this._outputMeta,
        this._output
      )
    );
    this._renderError();
    this._renderStatus();
    this._renderTree();
    this._renderTarget();
  }

  /** The last status the server reported (null before the first answer). */
  get status(): IStatus | null {
    return this._status;
  }

  get target(): ITarget | null {
    return this._target;
  }

  /** Emitted whenever the status, target or busy state changes (commands re-check enablement). */
  get stateChanged(): ISignal<this, void> {
    return this._stateChanged;
  }

  get busy(): boolean {
    return this._busy !== null;
  }

  dispose(): void {
    this._stopPolling();
    super.dispose();
  }

  async refreshStatus(): Promise<void> {
    try {
      this._setStatus(await api.status());
      if (this._errorFromPoll) {
        this._clearError(); // the server is back: the poll's own error is stale
      }
    } catch (error) {
      this._showError('Could not read the mount status', error);
      this._errorFromPoll = true;
    }
  }

  async mount(): Promise<void> {
    await this._run('Mounting…', async () => {
      this._busyMessage = null;
      this._setStatus(await api.mount());
      if (this._status && this._status.mode === 'error') {
        this._showError('Mount failed', new Error(this._status.reason ?? 'unknown reason'));
      }
      if (this._algorithms === null) {
        void this.loadAlgorithms();
      }
    });
  }

  /** Refused while processes hold the mount: the answer names them and "Unmount anyway" appears. */
  async unmount(force = false): Promise<void> {
    await this._run('Unmounting…', async () => {
      const status = await api.unmount(force);
      this._busyMessage = status.busy_message ?? null;
      this._unmountRefused = !!status.busy && status.mounted;
      this._setStatus(status);
    });
  }

  async clearCache(): Promise<void> {
    await this._run('Clearing the cache…', async () => {
      const stats = await api.clearCache();
      if (this._status) {
        this._setStatus({ ...this._status, cache: stats });
      }
    });
  }

  async openInFileBrowser(): Promise<void> {
    try {
      const status = this._status ?? (await api.status());
      if (!status.mounted) {
        throw new Error('Nothing is mounted: press Mount first.');
      }
      await this._options.openPath(status.mountpoint);
    } catch (error) {
      this._showError('Could not open the mount in the file browser', error);
    }
  }

  async loadAlgorithms(): Promise<void> {
    void this.loadOrganizations();
    try {
      this._algorithms = await api.algorithms();
      if (!this._target && this._algorithms.length > 0) {
        const first = this._algorithms[0];
        this.selectAlgorithm(first.user, first.name);
      }
    } catch (error) {
      this._showError('Could not list the algorithms', error);
    }
    this._renderTree();
  }

  /** The caller's organizations, each a button that opens its shared folder (none: the row stays hidden). */
  async loadOrganizations(): Promise<void> {
    let organizations: IOrganization[] = [];
    try {
      organizations = await api.organizations();
    } catch (error) {
      console.warn('AlgoFS: could not list the organizations', error);
    }
    const open = (org: IOrganization) =>
      button(org.role ? `${org.name} (${org.role})` : org.name, {
        icon: folderIcon,
        testid: `algofs-team-${org.name}`,
        title: `Open ${org.path}, the folder the members of ${org.name} share`,
        onClick: () => void this._options.openPath(org.path)
      });
    this._teamsNode.replaceChildren(
      ...(organizations.length ? [h('span', {}, 'Teams: '), ...organizations.map(open)] : [])
    );
    this._teamsNode.hidden = organizations.length === 0;
  }

  /** Choose where Send/Run pipe to; version defaults to "latest" (or the newest listed). */
  selectAlgorithm(user: string, name: string, version?: string): void {
    const algorithm = this._algorithms?.find(a => a.user === user && a.name === name);
    const versions = algorithm?.versions ?? [];
    const chosen = version ?? (versions.includes('latest') ? 'latest' : versions[versions.length - 1] ?? 'latest');
    this._target = { user, name, version: chosen };
    this._renderTree();
    this._renderTarget();
    this._stateChanged.emit();
  }

  /** Pipe the active cell (or its selection, or the open file's selection) to the target. */
  async sendEditorText(): Promise<void> {
    const source = this._options.textSource.current();
    if (!source) {
      this._showError('Nothing to send', new Error('Open a notebook or a file and select some text.'));
      return;
    }
    await this.pipe(source.text, source.origin);
  }

  /** Publish the active cell (or file) as a new version of the algorithm named in the publish box. */
  async publishEditorText(): Promise<void> {
    const source = this._options.textSource.current();
    const algorithm = this._publishName.value.trim() || (this._target ? `${this._target.user}/${this._target.name}` : '');
    if (!source || !algorithm) {
      this._showError('Nothing to publish', new Error('Open a cell that defines apply(input) and name the algorithm.'));
      return;
    }
    this._output.classList.remove('jp-mod-error');
    this._outputMeta.textContent = `Publishing ${algorithm} from ${source.origin}…`;
    this._output.textContent = '';
    await this._run(`Publishing ${algorithm}…`, async () => {
      const response = await api.publish({ algorithm, source: source.text });
      // A failed build is a result: its log goes where pipe output goes, marked as an error.
      this._output.classList.toggle('jp-mod-error', !response.ok);
      this._outputMeta.textContent = response.ok
        ? `Published ${response.algorithm} ${response.version} · ${source.origin}`
        : `Build failed for ${response.algorithm}; nothing was published · ${source.origin}`;
      this._output.textContent = response.ok ? response.message : response.logs.trim();
      if (response.ok) {
        void this.loadAlgorithms();
      }
    });
  }

  async pipe(input: string, origin: string): Promise<void> {
    const target = this._target;
    if (!target) {
      this._showError('No algorithm chosen', new Error('Pick one in the algorithm tree first.'));
      return;
    }
    if (this._busy !== null) {
      return;
    }
    const algorithm = targetName(target);
    const contentType = this._contentType.value as ContentType;
    this._output.classList.remove('jp-mod-error');
    this._outputMeta.textContent = `Running ${algorithm} on ${origin}…`;
    this._output.textContent = '';
    await this._run(`Running ${algorithm}…`, async () => {
      try {
        const response = await api.pipe({ algorithm, input, content_type: contentType });
        this._outputMeta.textContent = `${algorithm} · ${response.duration.toFixed(3)} s · ${origin}`;
        this._output.textContent = formatResult(response);
      } catch (error) {
        this._output.classList.add('jp-mod-error');
        if (error instanceof AlgofsError && error.status === 422) {
          // The algorithm ran and failed: that is a result, not a panel error.
          this._outputMeta.textContent = `${algorithm} failed${error.errorType ? ` (${error.errorType})` : ''} · ${origin}`;
          this._output.textContent = error.message;
          return;
        }
        this._outputMeta.textContent = `${algorithm} could not run · ${origin}`;
        this._output.textContent = String((error as Error).message ?? error);
        throw error;
      }
    });
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._startPolling();
    void this.refreshStatus();
    if (this._algorithms === null) {
      void this.loadAlgorithms();
    }
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._stopPolling();
  }

  private _startPolling(): void {
    if (this._timer !== null) {
      return;
    }
    this._timer = window.setInterval(() => {
      if (this.isVisible && !document.hidden && this._busy === null) {
        void this.refreshStatus();
      }
    }, this._options.pollInterval ?? 3000);
  }

  private _stopPolling(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  /** One action at a time; its failure goes to the error bar. */
  private async _run(label: string, action: () => Promise<void>): Promise<void> {
    if (this._busy !== null) {
      return;
    }
    this._busy = label;
    this._renderStatus();
    this._stateChanged.emit();
    try {
      this._clearError();
      await action();
    } catch (error) {
      this._showError(label.replace(/…$/, '') + ' failed', error);
    } finally {
      this._busy = null;
      this._renderStatus();
      this._stateChanged.emit();
    }
  }

  private _setStatus(status: IStatus): void {
    this._status = status;
    this._renderStatus();
    this._stateChanged.emit();
  }

  private _showError(context: string, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this._error = `${context}: ${message}`;
    this._errorFromPoll = false;
    console.warn('AlgoFS:', this._error);
    this._renderError();
  }

  private _clearError(): void {
    this._error = null;
    this._errorFromPoll = false;
    this._renderError();
  }

  private _renderError(): void {
    this._errorBar.replaceChildren();
    this._errorBar.hidden = this._error === null;
    if (this._error !== null) {
      const dismiss = button('', { icon: closeIcon, title: 'Dismiss', onClick: () => this._clearError() });
      dismiss.classList.add('jp-AlgofsPanel-iconButton');
      this._errorBar.append(h('span', { className: 'jp-AlgofsPanel-errorText' }, this._error), dismiss);
    }
  }

  private _renderStatus(): void {
    const status = this._status;
    const mode = status?.mode ?? 'unknown';
    const label = this._busy ?? (status ? MODE_LABELS[status.mode] : 'Checking…');
    const badge = h(
      'span',
      { className: `jp-AlgofsPanel-badge jp-mod-${this._busy ? 'busy' : mode}`, 'data-testid': 'algofs-mount-state', 'data-mode': mode },
      label
    );
    const rows: HTMLElement[] = [h('div', { className: 'jp-AlgofsPanel-stateLine' }, badge)];
    if (status?.mounted) {
      rows.push(h('div', { className: 'jp-AlgofsPanel-detail', 'data-testid': 'algofs-mountpoint' }, `at /${status.mountpoint}`));
    }
    if (status?.reason) {
      rows.push(h('div', { className: 'jp-AlgofsPanel-reason', 'data-testid': 'algofs-reason' }, status.reason));
    }
    if (status?.api_address) {
      const who = status.username ? `${status.username} @ ` : '';
      const embedded = status.embedded_server ? ' (embedded server)' : '';
      rows.push(h('div', { className: 'jp-AlgofsPanel-detail', title: 'Algorithmia API in use' }, `${who}${status.api_address}${embedded}`));
    }
    this._stateNode.replaceChildren(...rows);

    const mounted = !!status?.mounted;
    this._mountButton.disabled = this._busy !== null || mounted;
    this._unmountButton.disabled = this._busy !== null || !mounted;
    if (!mounted) {
      this._unmountRefused = false;
    }
    this._forceUnmountButton.style.display = this._unmountRefused ? '' : 'none'; // [hidden] loses to the button's CSS
    this._forceUnmountButton.disabled = this._busy !== null;
    this._busyNode.hidden = this._busyMessage === null;
    this._busyNode.textContent = this._busyMessage ?? '';
    this._openButton.disabled = !mounted;
    this._clearButton.disabled = this._busy !== null || !status?.cache;
    this._sendButton.disabled = this._busy !== null || !this._target;
    this._publishButton.disabled = this._busy !== null;
    this._runButton.disabled = this._busy !== null || !this._target;
    this._renderCache(status?.cache ?? null);
  }

  private _renderCache(stats: ICacheStats | null): void {
    if (!stats) {
      this._cacheNode.replaceChildren(h('div', { className: 'jp-AlgofsPanel-detail' }, 'No cache while nothing is mounted.'));
      return;
    }
    const ratio = isFinite(stats.hit_ratio) ? `${(stats.hit_ratio * 100).toFixed(0)} %` : '–';
    const row = (name: string, value: string, testid?: string) =>
      h('tr', {}, h('th', {}, name), h('td', { 'data-testid': testid }, value));
    this._cacheNode.replaceChildren(
      h(
        'table',
        { className: 'jp-AlgofsPanel-cacheTable', 'data-testid': 'algofs-cache-stats' },
        h(
          'tbody',
          {},
          row('Used', `${formatBytes(stats.size_bytes)} of ${formatBytes(stats.limit_bytes)}`, 'algofs-cache-used'),
          row('Files', String(stats.entries?.length ?? 0), 'algofs-cache-files'),
          row(
            'In memory',
            `${stats.small_files?.files ?? 0} small file(s), ${formatBytes(stats.small_files?.bytes ?? 0)}`,
            'algofs-cache-small'
          ),
          row('Hits / misses', `${stats.hits} / ${stats.misses} (${ratio})`),
          row('Fetched', formatBytes(stats.bytes_fetched)),
          ...(stats.server_files?.reads
            ? [row("Server's files", `${formatBytes(stats.server_files.bytes)} read, not cached`, 'algofs-cache-server')]
            : []),
          row('Uploads', `${stats.uploads_in_flight} in flight, ${stats.uploads_failed} failed`)
        )
      )
    );
  }

  private _renderTarget(): void {
    this._targetNode.textContent = this._target ? `Target: ${targetName(this._target)}` : 'Pick an algorithm';
    this._renderStatus();
  }

  private _renderTree(): void {
    if (this._algorithms === null) {
      this._treeNode.replaceChildren(h('li', { className: 'jp-AlgofsPanel-detail' }, 'Loading algorithms…'));
      return;
    }
    if (this._algorithms.length === 0) {
      this._treeNode.replaceChildren(h('li', { className: 'jp-AlgofsPanel-detail' }, 'No algorithms published.'));
      return;
    }
    const byUser = new Map<string, IAlgorithm[]>();
    for (const algorithm of this._algorithms) {
      byUser.set(algorithm.user, [...(byUser.get(algorithm.user) ?? []), algorithm]);
    }
    const userNodes = [...byUser.entries()].map(([user, algorithms]) => {
      const collapsed = this._collapsed.has(user);
      const caret = (collapsed ? caretRightIcon : caretDownIcon).element({ tag: 'span', className: 'jp-AlgofsPanel-caret' });
      const header = h(
        'div',
        { className: 'jp-AlgofsPanel-treeUser', role: 'button', title: collapsed ? 'Expand' : 'Collapse' },
        caret,
        usersIcon.element({ tag: 'span', className: 'jp-AlgofsPanel-treeIcon' }),
        h('span', {}, user)
      );
      header.addEventListener('click', () => {
        if (collapsed) {
          this._collapsed.delete(user);
        } else {
          this._collapsed.add(user);
        }
        this._renderTree();
      });
      const children = collapsed
        ? null
        : h('ul', { role: 'group' }, ...algorithms.map(algorithm => this._algorithmNode(algorithm)));
      return h('li', { role: 'treeitem', 'aria-expanded': String(!collapsed) }, header, children);
    });
    this._treeNode.replaceChildren(...userNodes);
  }

  private _algorithmNode(algorithm: IAlgorithm): HTMLElement {
    const selected = this._target?.user === algorithm.user && this._target?.name === algorithm.name;
    const versions = h(
      'select',
      { className: 'jp-mod-styled jp-AlgofsPanel-version', title: 'Version' },
      ...algorithm.versions.map(v => h('option', { value: v }, v))
    );
    if (selected && this._target) {
      versions.value = this._target.version;
    } else if (algorithm.versions.includes('latest')) {
      versions.value = 'latest';
    }
    versions.addEventListener('click', event => event.stopPropagation());
    versions.addEventListener('change', () => this.selectAlgorithm(algorithm.user, algorithm.name, versions.value));
    const row = h(
      'li',
      {
        className: `jp-AlgofsPanel-treeAlgorithm${selected ? ' jp-mod-selected' : ''}`,
        role: 'treeitem',
        'aria-selected': String(selected),
        'data-algorithm': `${algorithm.user}/${algorithm.name}`,
        title: `Send input to ${algorithm.user}/${algorithm.name}`
      },
      codeIcon.element({ tag: 'span', className: 'jp-AlgofsPanel-treeIcon' }),
      h('span', { className: 'jp-AlgofsPanel-treeName' }, algorithm.name),
      versions
    );
    row.addEventListener('click', () => this.selectAlgorithm(algorithm.user, algorithm.name, versions.value));
    return row;
  }

  private readonly _options: IPanelOptions;
  private readonly _stateChanged = new Signal<this, void>(this);
  private readonly _errorBar: HTMLDivElement;
  private readonly _stateNode: HTMLDivElement;
  private readonly _cacheNode: HTMLDivElement;
  private readonly _treeNode: HTMLUListElement;
  private readonly _targetNode: HTMLDivElement;
  private readonly _input: HTMLTextAreaElement;
  private readonly _contentType: HTMLSelectElement;
  private readonly _outputMeta: HTMLDivElement;
  private readonly _output: HTMLPreElement;
  private readonly _mountButton: HTMLButtonElement;
  private readonly _unmountButton: HTMLButtonElement;
  private readonly _openButton: HTMLButtonElement;
  private readonly _clearButton: HTMLButtonElement;
  private readonly _sendButton: HTMLButtonElement;
  private readonly _runButton: HTMLButtonElement;
  private readonly _publishButton: HTMLButtonElement;
  private readonly _publishName: HTMLInputElement;
  private readonly _collapsed = new Set<string>();
  private _status: IStatus | null = null;
  private _busyMessage: string | null = null; // who held the mount at the last unmount
  private _unmountRefused = false;
  private readonly _forceUnmountButton: HTMLButtonElement;
  private readonly _busyNode: HTMLElement;
  private readonly _teamsNode: HTMLElement;
  private _algorithms: IAlgorithm[] | null = null;
  private _target: ITarget | null = null;
  private _busy: string | null = null;
  private _error: string | null = null;
  private _errorFromPoll = false;
  private _timer: number | null = null;
}
