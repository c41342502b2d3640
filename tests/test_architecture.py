"""The house of ../shared/ARCHITECTURE.md holds: no import cycle in `server/` (the floors and the
peewee rule are import-linter contracts, run by `make lint`)."""

from __future__ import annotations

import grimp


def test_the_import_graph_of_server_has_no_cycle() -> None:
    graph = grimp.build_graph("server")
    cycles = [
        (module, imported)
        for module in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if graph.chain_exists(importer=imported, imported=module)
    ]
    assert not cycles, cycles
