import pytest
from django.core.exceptions import ValidationError

from icewarp_admin.mailserver.selectors import system_variable_value, system_variables
from icewarp_admin.mailserver.services.system import reset_system_variable, set_system_variable
from icewarp_admin.mailserver.system_variables import SYSTEM_VARIABLES, find_variable

pytestmark = pytest.mark.django_db


def test_every_variable_of_the_rules_file_with_its_default() -> None:
    defaults = {spec.name: spec.default for spec in SYSTEM_VARIABLES}
    assert defaults == {
        "C_Accounts_Global_ActiveDirectorySyncInterval": 5,
        "C_System_ADSyncDisableVCardSync": 0,
        "C_System_ADSyncMaxDeleteThreshold": 0,
        "C_System_ADSyncIgnoreSearchError": 0,
        "C_Accounts_Global_LDAP_PassChangeDisable": 0,
        "C_System_ADSyncLogType": 2,
    }
    assert dict((spec.name, value) for spec, value in system_variables()) == defaults


def test_names_are_case_insensitive_and_values_typed() -> None:
    assert set_system_variable(name="c_system_adsyncmaxdeletethreshold", value="25") == 25
    assert system_variable_value(name="C_SYSTEM_ADSYNCMAXDELETETHRESHOLD") == 25
    assert set_system_variable(name="C_System_ADSyncIgnoreSearchError", value="true") == 1
    assert reset_system_variable(name="C_System_ADSyncIgnoreSearchError") == 0
    assert system_variable_value(name="C_System_ADSyncIgnoreSearchError") == 0


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("C_Accounts_Global_ActiveDirectorySyncInterval", "0", "between 1 and 1440"),
        ("C_Accounts_Global_ActiveDirectorySyncInterval", "five", "whole number"),
        ("C_System_ADSyncDisableVCardSync", "2", "1 (on) or 0 (off)"),
        ("C_System_ADSyncLogType", "4", "must be one of 0 (None)"),
        ("C_System_ADSyncMaxDeleteThreshold", "-1", "between 0"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_stored(name: str, value: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        set_system_variable(name=name, value=value)
    assert says in error.value.messages[0]
    assert system_variable_value(name=name) == find_variable(name).default


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(LookupError, match="C_System_ADSyncLogType"):
        find_variable("C_Nope")
