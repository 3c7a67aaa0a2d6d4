"""Index a function app with the Python language worker's own code, as the worker does when it starts.

    functions = worker_index.load(worker_index.script(directory))  # imports the script, once per app object
    worker_index.index(functions, directory)                       # FunctionLoadError: the app does not load

The worker is azure-functions-runtime (the language worker's Python package; installed for the tests with
`--no-deps --ignore-requires-python`, see requirements-worker.txt). Its start-up, handle_event.py
`worker_init_request` -> `load_function_metadata` -> `index_functions`, is: `bindings.meta.load_binding_registry()`,
`loader.index_function_app(<dir>/<PYTHON_SCRIPT_FILE_NAME>)`, then `loader.process_indexed_function`, whose
`functions.Registry.add_indexed_function` checks every function's parameters and annotations against its
bindings. Any error there fails the worker's init, and no function of the app loads (in Azure and under
`func start` alike). This module calls those functions; it checks nothing itself and raises their errors
unchanged (`FunctionLoadError` for a function the worker refuses).
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from azure_functions_runtime import loader  # type: ignore[import-untyped]
from azure_functions_runtime.bindings import meta  # type: ignore[import-untyped]
from azure_functions_runtime.functions import FunctionLoadError, Registry  # type: ignore[import-untyped]
from azure_functions_runtime.utils.app_setting_manager import get_app_setting  # type: ignore[import-untyped]
from azure_functions_runtime.utils.constants import (  # type: ignore[import-untyped]
    PYTHON_SCRIPT_FILE_NAME,
    PYTHON_SCRIPT_FILE_NAME_DEFAULT,
)
from azure_functions_runtime.utils.validators import validate_script_file_name  # type: ignore[import-untyped]

__all__ = ["PROTOS", "FunctionLoadError", "index", "load", "script"]


class _BindingInfo(types.SimpleNamespace):
    """FunctionRpc.proto `message BindingInfo`: enum Direction {in = 0; out = 1; inout = 2} and
    DataType {undefined = 0; ...} (Azure/azure-functions-language-worker-protobuf, src/proto/FunctionRpc.proto
    at 2a3fb29). The worker compares binding directions and data types with these values."""

    inout = 2
    out = 1
    undefined = 0


# The generated FunctionRpc protobuf module the host hands the worker (`request.properties["protos"]`): on
# the indexing path only the enum values above and three message constructors (keyword arguments) are used.
PROTOS = types.SimpleNamespace(BindingInfo=_BindingInfo, RpcFunctionMetadata=types.SimpleNamespace,
                               RpcRetryOptions=types.SimpleNamespace)


def script(directory: Path) -> Path:
    """The script the worker indexes: the PYTHON_SCRIPT_FILE_NAME app setting (default function_app.py)."""
    name = get_app_setting(setting=PYTHON_SCRIPT_FILE_NAME, default_value=PYTHON_SCRIPT_FILE_NAME_DEFAULT)
    validate_script_file_name(name)
    return directory / str(name)


def load(path: Path) -> list[Any]:
    """The functions of the script's one app object (`loader.index_function_app`). The script is imported by
    its stem, so its directory must be on sys.path; it calls `app.get_functions()`, which an app object
    allows once."""
    meta.load_binding_registry()
    return list(loader.index_function_app(str(path)))


def index(functions: Sequence[Any], directory: Path) -> list[Any]:
    """Index `functions` as the worker does; returns its RpcFunctionMetadata for each (as namespaces).
    Raises the worker's FunctionLoadError for the first function it refuses."""
    meta.load_binding_registry()
    metadata, _binding_logs = loader.process_indexed_function(PROTOS, Registry(), list(functions), str(directory))
    return list(metadata)
