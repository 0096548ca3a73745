import copy

import pytest

from nodemesh.dashboards import mesh
from nodemesh.dashboards.loader import DashboardLoadError, check, first_difference, load
from nodemesh.dashboards.render import to_data


@pytest.fixture
def data():
    return to_data(mesh.build())


def test_round_trip_gives_the_same_json(data):
    assert to_data(load(data)) == data


def test_a_field_grafanalib_does_not_write_is_refused(data):
    bad = copy.deepcopy(data)
    bad["panels"][1]["fieldConfig"]["defaults"]["colour"] = "red"
    with pytest.raises(DashboardLoadError, match=r"panels\[1\]\.fieldConfig\.defaults\.colour"):
        check(bad, to_data)


def test_a_missing_field_names_its_path(data):
    bad = copy.deepcopy(data)
    del bad["panels"][1]["options"]["reduceOptions"]
    with pytest.raises(DashboardLoadError, match=r"panels\[1\].*options\.reduceOptions"):
        load(bad)


def test_a_value_the_models_validators_refuse_is_reported(data):
    bad = copy.deepcopy(data)
    ts = next(i for i, p in enumerate(bad["panels"]) if p["type"] == "timeseries")
    bad["panels"][ts]["options"]["legend"]["calcs"] = ["average"]
    with pytest.raises(DashboardLoadError, match=rf"panels\[{ts}\]: grafanalib refused TimeSeries"):
        load(bad)


def test_an_unknown_panel_type_lists_the_known_ones(data):
    bad = copy.deepcopy(data)
    bad["panels"][0]["type"] = "piechart"
    with pytest.raises(DashboardLoadError, match=r"'piechart' unknown.*row, stat, timeseries"):
        load(bad)


def test_legacy_rows_are_refused(data):
    with pytest.raises(DashboardLoadError, match="legacy 'rows'"):
        load(data | {"rows": [{"panels": []}]})


@pytest.mark.parametrize(
    ("a", "b", "where"),
    [
        ({"x": [1, {"y": 2}]}, {"x": [1, {"y": 3}]}, ".x[1].y"),
        ({"x": 1}, {"x": 1, "z": 0}, ".z"),
        ([1, 2], [1], "."),
        ({"x": 1}, {"x": 1}, None),
    ],
)
def test_first_difference(a, b, where):
    assert first_difference(a, b) == where
