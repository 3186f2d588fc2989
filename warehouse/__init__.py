"""The warehouse: schema, engine, reference data, loading and marts.

Import the submodules directly (``warehouse.engine``, ``warehouse.load`` ...). This package
initialiser stays empty on purpose: ``expectations`` locates ``warehouse/reference/units.csv``
through this package, so importing anything here would create an import cycle.
"""
