import dataclasses

import pytest

from shared.errors import SettingsError
from shared.settings import Settings, describe, env_names


def test_defaults_follow_the_design():
    s = Settings.from_env({})
    assert s.backend == "local"
    assert s.max_container_size == 500
    assert s.training_mode == "changed"
    assert s.storage_connection == "UseDevelopmentStorage=true"
    assert s.splitting_tags == () and s.sorting_tags == ()
    assert s.enabled_targets == ("local",)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("MAX_CONTAINER_SIZE", "5000", "from 1 to 1000"),
        ("MAX_CONTAINER_SIZE", "ten", "from 1 to 1000"),
        ("DEPLOY_ACI", "maybe", "true or false"),
        ("TRAINING_METHOD", "foo", "'customscript' or 'automl'"),
        ("MANYMODELS_BACKEND", "cloud", "'local', 'aml' or 'amlv2'"),
        ("TRAINING_MODE", "some", "'changed' or 'all'"),
        ("DATA_QUIET_SECONDS", "-1", "seconds"),
    ],
)
def test_bad_value_names_variable_value_and_what_is_allowed(name, value, allowed):
    with pytest.raises(SettingsError) as e:
        Settings.from_env({name: value})
    assert name in str(e.value) and repr(value) in str(e.value) and allowed in str(e.value)


def test_values_are_parsed_and_typed():
    s = Settings.from_env({"MAX_CONTAINER_SIZE": " 250 ", "DEPLOY_ACI": "TRUE", "SPLITTING_TAGS": "StoreGroup10, Brand",
                           "SORTING_TAGS": "Store"})
    assert s.max_container_size == 250 and s.deploy_aci is True
    assert s.splitting_tags == ("StoreGroup10", "Brand") and s.sorting_tags == ("Store",)
    assert s.enabled_targets == ("local", "aci")


def test_aks_needs_a_name_and_aml_needs_a_workspace():
    with pytest.raises(SettingsError, match="AKS_NAME"):
        Settings.from_env({"DEPLOY_AKS": "true"})
    with pytest.raises(SettingsError, match="AML_WORKSPACE_NAME"):
        Settings.from_env({"MANYMODELS_BACKEND": "aml", "AZURE_SUBSCRIPTION_ID": "s", "RESOURCE_GROUP": "rg"})


def test_settings_are_frozen():
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.max_container_size = 3  # type: ignore[misc]
    assert s.replace(max_container_size=3).max_container_size == 3


def test_every_setting_is_described():
    assert [d[0] for d in describe()] == list(env_names())
    assert all(d[2] for d in describe())


def test_identity_based_storage_on_azure():
    s = Settings.from_env({"AzureWebJobsStorage__accountName": "mmsa"})
    assert s.storage_connection == "https://mmsa.blob.core.windows.net"
    s = Settings.from_env({"AzureWebJobsStorage__blobServiceUri": "https://x.blob.core.windows.net"})
    assert s.storage_connection == "https://x.blob.core.windows.net"


def test_every_field_is_read_from_exactly_one_variable():
    # Settings lists its fields and shared/settings.py's spec their variables: from_env passes one value
    # per variable, so a variable without a field fails there; equal counts leave no field unread.
    assert len(env_names()) == len(set(env_names())) == len(dataclasses.fields(Settings))


AZURE = {"AZURE_SUBSCRIPTION_ID": "s", "RESOURCE_GROUP": "rg", "AML_WORKSPACE_NAME": "ws"}


@pytest.mark.parametrize(("environ", "message"), [
    ({"MANYMODELS_BACKEND": "amlv2", "AZURE_SUBSCRIPTION_ID": "s"}, "MANYMODELS_BACKEND=amlv2 needs RESOURCE_GROUP"),
    ({"MANYMODELS_BACKEND": "aml", **AZURE, "TRAINING_METHOD": "automl"}, "needs MANYMODELS_BACKEND=amlv2"),
    ({"MANYMODELS_BACKEND": "amlv2", **AZURE, "TRAINING_METHOD": "automl"}, "needs TRAINING_MODE=all"),
    ({"DEPLOY_MANAGED": "true"}, "DEPLOY_MANAGED=true needs MANYMODELS_BACKEND=amlv2"),
    ({"MANYMODELS_BACKEND": "amlv2", **AZURE, "DEPLOY_ACI": "true"}, "set DEPLOY_MANAGED=true"),
])
def test_backend_combinations_that_cannot_work_are_refused_at_start_up(environ, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_the_v2_backend_with_automl_and_managed_endpoints():
    settings = Settings.from_env({"MANYMODELS_BACKEND": "amlv2", **AZURE, "TRAINING_METHOD": "automl",
                                  "TRAINING_MODE": "all", "DEPLOY_LOCAL": "false", "DEPLOY_MANAGED": "true",
                                  "DEPLOY_AKS": "true", "AKS_NAME": "aks"})
    assert settings.enabled_targets == ("managed", "aks")
