"""Test helpers shared by the unit and integration suites (``from tests.support.fakes import ...``)."""
