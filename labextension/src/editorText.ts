/**
 * Where the text sent to an algorithm comes from: the selection in the active notebook cell or
 * file editor, else the whole active cell (or file).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { CodeEditor } from '@jupyterlab/codeeditor';
import { IEditorTracker } from '@jupyterlab/fileeditor';
import { INotebookTracker } from '@jupyterlab/notebook';

export interface IEditorText {
  text: string;
  /** Human-readable origin shown in the panel, e.g. "selection in cell 3 of demo.ipynb". */
  origin: string;
}

function selectedOrAll(editor: CodeEditor.IEditor): { text: string; selected: boolean } {
  const source = editor.model.sharedModel.getSource();
  const selection = editor.getSelection();
  const start = editor.getOffsetAt(selection.start);
  const end = editor.getOffsetAt(selection.end);
  if (start !== end) {
    return { text: source.slice(Math.min(start, end), Math.max(start, end)), selected: true };
  }
  return { text: source, selected: false };
}

export class EditorTextSource {
  constructor(
    private readonly shell: JupyterFrontEnd.IShell,
    private readonly notebooks: INotebookTracker | null,
    private readonly editors: IEditorTracker | null
  ) {}

  /** The text to send, or null when no notebook or editor is open. */
  current(): IEditorText | null {
    const focused = this.shell.currentWidget;
    const notebook = this.notebooks?.currentWidget ?? null;
    const fileEditor = this.editors?.currentWidget ?? null;
    // Prefer whatever the main area shows now; the sidebar click does not change it.
    const preferEditor = fileEditor !== null && focused === fileEditor;
    if (notebook && !preferEditor) {
      const cell = notebook.content.activeCell;
      if (cell && cell.editor) {
        const { text, selected } = selectedOrAll(cell.editor);
        const index = notebook.content.activeCellIndex + 1;
        const what = selected ? 'selection in cell' : 'cell';
        return { text, origin: `${what} ${index} of ${notebook.context.path}` };
      }
    }
    if (fileEditor) {
      const { text, selected } = selectedOrAll(fileEditor.content.editor);
      const what = selected ? 'selection in' : 'all of';
      return { text, origin: `${what} ${fileEditor.context.path}` };
    }
    return null;
  }
}
