"""ISO 3779 check digit."""

import pytest

from vehicle_agent.vin import is_plausible_vin, is_valid_vin, vin_check_digit


@pytest.mark.parametrize(
    ("vin", "digit"),
    [
        ("1M8GDM9AXKP042788", "X"),  # the textbook example (check digit 10 -> X)
        ("11111111111111111", "1"),
        ("1HGCM82633A004352", "3"),  # Honda Accord
        ("5YJSA1DG9DFP14705", "9"),  # Tesla Model S
    ],
)
def test_known_vins(vin, digit):
    assert vin_check_digit(vin) == digit
    assert is_valid_vin(vin)


def test_one_changed_character_breaks_the_check():
    assert not is_valid_vin("1M8GDM9AXKP042789")
    assert not is_valid_vin("1HGCM82643A004352")


def test_lowercase_is_accepted():
    assert is_valid_vin("1m8gdm9axkp042788")


@pytest.mark.parametrize("bad", ["", "1M8GDM9AXKP04278", "1M8GDM9AXKP0427888", "1M8GDM9AXKP04278O"])
def test_malformed(bad):
    assert not is_plausible_vin(bad.upper())
    assert not is_valid_vin(bad)
    with pytest.raises(ValueError):
        vin_check_digit(bad)
