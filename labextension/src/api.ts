/**
 * Typed client for the server extension's REST API (docs/rest-api.md).
 *
 * Every call goes through ServerConnection.makeRequest so the token, the XSRF header and the
 * server's base_url are handled the way the rest of JupyterLab handles them.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type MountMode = 'fuse' | 'fallback' | 'unmounted' | 'error';

export interface ICacheEntry {
  path: string;
  cached_bytes: number;
  size: number;
}

export interface ICacheStats {
  size_bytes: number;
  limit_bytes: number;
  hits: number;
  misses: number;
  hit_ratio: number;
  bytes_fetched: number;
  entries: ICacheEntry[];
  uploads_in_flight: number;
  uploads_failed: number;
  /** Small files held whole in memory, apart from the block cache's size_bytes (docs/rest-api.md). */
  small_files?: { files: number; bytes: number };
  /** Large files read from the server's own file (a server on this machine): not cached (docs/rest-api.md). */
  server_files?: { opened: number; reads: number; bytes: number };
}

export interface IStatus {
  mode: MountMode;
  mounted: boolean;
  mountpoint: string;
  mountpoint_abs?: string;
  reason: string | null;
  api_address?: string;
  embedded_server?: boolean;
  username?: string;
  cache: ICacheStats | null;
  /** Only in an unmount's answer: the processes holding the mount (docs/rest-api.md). */
  busy?: IHolder[];
  busy_message?: string;
}

export interface IHolder {
  pid: number;
  command: string;
  cwd: string | null;
  files: string[];
  kernel: { id: string; notebook: string | null } | null;
}

/** One of the caller's organizations: its shared folder is `path` (docs/rest-api.md). */
export interface IOrganization {
  name: string;
  role: string | null;
  path: string;
}

export interface IAlgorithm {
  user: string;
  name: string;
  versions: string[];
}

export type ContentType = 'text' | 'json' | 'binary';

export interface IPipeRequest {
  algorithm: string;
  input: string;
  content_type: ContentType;
  timeout?: number;
}

export interface IPublishRequest {
  algorithm: string;
  source: string;
  version?: 'major' | 'minor' | 'revision';
}

/** A failed build is an answer too: `ok: false` and the build's log (docs/rest-api.md). */
export interface IPublishResponse {
  ok: boolean;
  algorithm: string;
  version: string | null;
  commit: string | null;
  logs: string;
  message: string;
}

export interface IPipeResponse {
  result: unknown;
  content_type: ContentType;
  duration: number;
}

/** An HTTP error with the server's `message` (and `error_type` for algorithm errors). */
export class AlgofsError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errorType?: string
  ) {
    super(message);
    this.name = 'AlgofsError';
  }
}

async function request<T>(
  endPoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'algofs', endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new AlgofsError(`Cannot reach the Jupyter server: ${String(error)}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (!response.ok) {
    const message =
      (data && typeof data.message === 'string' && data.message) ||
      `${response.status} ${response.statusText}`;
    throw new AlgofsError(message, response.status, data?.error_type);
  }
  return data as T;
}

function jsonBody(method: string, body: unknown): RequestInit {
  return { method, body: JSON.stringify(body) };
}

export const api = {
  status: (): Promise<IStatus> => request<IStatus>('status'),
  mount: (path?: string): Promise<IStatus> =>
    request<IStatus>('mount', jsonBody('POST', path ? { path } : {})),
  unmount: (force = false): Promise<IStatus> => request<IStatus>('unmount', jsonBody('POST', { force })),
  cache: (): Promise<ICacheStats> => request<ICacheStats>('cache'),
  clearCache: (): Promise<ICacheStats> => request<ICacheStats>('cache', { method: 'DELETE' }),
  organizations: async (): Promise<IOrganization[]> =>
    (await request<{ organizations: IOrganization[] }>('organizations')).organizations,
  algorithms: async (): Promise<IAlgorithm[]> =>
    (await request<{ algorithms: IAlgorithm[] }>('algorithms')).algorithms,
  pipe: (body: IPipeRequest): Promise<IPipeResponse> =>
    request<IPipeResponse>('pipe', jsonBody('POST', body)),
  publish: (body: IPublishRequest): Promise<IPublishResponse> =>
    request<IPublishResponse>('publish', jsonBody('POST', body))
};

/** 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return '–';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} ${units[unit]}` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The pipe result as text for the panel: strings as they are, JSON pretty-printed. */
export function formatResult(response: IPipeResponse): string {
  const { result, content_type } = response;
  if (content_type === 'binary') {
    const size = typeof result === 'string' ? Math.floor((result.length * 3) / 4) : 0;
    return `<binary result, about ${formatBytes(size)}>`;
  }
  if (typeof result === 'string') {
    return result;
  }
  return JSON.stringify(result, null, 2);
}
