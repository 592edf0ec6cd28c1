/** Tiny DOM helpers so the panel code reads as structure, not as createElement calls. */
import { LabIcon } from '@jupyterlab/ui-components';

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; title?: string; [attr: string]: string | undefined } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) {
      continue;
    }
    if (key === 'className') {
      el.className = value;
    } else {
      el.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child) {
      el.append(child);
    }
  }
  return el;
}

/** A JupyterLab-styled button with an optional LabIcon. */
export function button(
  label: string,
  options: {
    icon?: LabIcon;
    kind?: 'accept' | 'reject' | 'warn' | 'plain';
    title?: string;
    testid?: string;
    onClick: () => void;
  }
): HTMLButtonElement {
  const kind = options.kind ?? 'plain';
  const kindClass = kind === 'plain' ? '' : ` jp-mod-${kind}`;
  const el = h('button', {
    className: `jp-mod-styled jp-AlgofsPanel-button${kindClass}`,
    title: options.title ?? label,
    type: 'button',
    'data-testid': options.testid
  });
  if (options.icon) {
    el.append(
      options.icon.element({ tag: 'span', className: 'jp-AlgofsPanel-buttonIcon', elementPosition: 'center' })
    );
  }
  el.append(h('span', { className: 'jp-AlgofsPanel-buttonLabel' }, label));
  el.addEventListener('click', () => options.onClick());
  return el;
}

/** A collapsible titled section of the panel. */
export function section(title: string, testid: string, ...children: Child[]): HTMLElement {
  return h(
    'section',
    { className: 'jp-AlgofsPanel-section', 'data-testid': testid },
    h('h3', { className: 'jp-AlgofsPanel-sectionTitle' }, title),
    ...children
  );
}
