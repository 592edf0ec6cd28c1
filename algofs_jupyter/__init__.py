"""algofs-jupyter: Algorithmia data and algorithms as files, in Jupyter.

The filesystem core (``algofs_jupyter.fs``, ``algofs_jupyter.mount``) and the embedded API server
(``algofs_jupyter.server``) import nothing from Jupyter; the Jupyter layers live in
``algofs_jupyter.jupyter`` and are loaded lazily from the hooks below.
"""

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    from .jupyter.serverext import AlgofsApp

    return [{"module": "algofs_jupyter", "app": AlgofsApp}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "algofs-jupyter"}]


def load_ipython_extension(ipython):
    from .jupyter.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython):
    from .jupyter.magics import unload_ipython_extension as unload

    unload(ipython)


def get_access():
    """This kernel's access to AlgoFS (``jupyter/kernel_access.py``): through the Jupyter server when the
    extension runs there, else a local one whose mount lives as long as the kernel."""
    from .jupyter.kernel_access import get_access as kernel_access

    return kernel_access()


def path(name: str) -> str:
    """Where a notebook reads ``name`` (``"data/demo/datasets/cities.csv"`` or a ``data://`` URI) from any
    working directory and in both modes: the file under the mount, else an ``algo://`` URL for pandas."""
    from .jupyter.notebook_paths import path as notebook_path

    return notebook_path(name)


#: The older name of :func:`get_access`, kept so notebooks written against it still run.
get_session = get_access


def widget(**kwargs):
    """The AlgoFS control panel (mount, cache, pipe) as an ipywidget."""
    from .jupyter.widget import AlgofsWidget

    return AlgofsWidget(**kwargs)
