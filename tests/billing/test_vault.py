"""The card vault: card checks, envelope encryption, keyed fingerprints, key rotation, the log safety net."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from billing.config import ConfigError, Settings
from billing.db.engine import transaction
from billing.errors import CardError
from billing.merchants.service import NewMerchant
from billing.services import Services
from billing.vault.cards import SecretPan, check_card, detect_brand, luhn_valid, parse_pan
from billing.vault.keys import VaultKeyError, generate_key_line, load_keyring, parse_keyring
from billing.vault.models import VaultEntry, VaultSecret
from billing.vault.redact import redact_pans
from billing.vault.rotation import rotate
from billing.vault.service import Vault
from tests.billing.payment_helpers import run_process

NOW = datetime(2027, 3, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6200000000000005", "unionpay"),
        ("3566002020360505", "jcb"),
        ("6011111111111117", "discover"),
    ],
)
def test_brands_are_recognised(number: str, brand: str) -> None:
    pan, detected = parse_pan(number)
    assert detected == brand == detect_brand(number)
    assert pan.reveal() == number


def test_spaces_and_dashes_are_ignored() -> None:
    pan, brand = parse_pan("4242 4242-4242 4242")
    assert (pan.reveal(), brand) == ("4242424242424242", "visa")


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("4242424242424241", "incorrect_number"),  # fails Luhn
        ("42424242", "invalid_number"),
        ("4242abcd42424242", "invalid_number"),
        ("9999999999999995", "card_brand_unsupported"),
        ("37828224631000", "incorrect_number"),  # an Amex number must be 15 digits
    ],
)
def test_bad_numbers_are_card_errors_that_name_the_field_and_never_repeat_the_number(
    number: str, code: str
) -> None:
    with pytest.raises(CardError) as caught:
        parse_pan(number)
    assert caught.value.code == code
    assert caught.value.status == 402
    assert caught.value.param == "card[number]"
    assert number not in caught.value.message


def test_expiry_is_checked_against_the_clock() -> None:
    check_card("4242424242424242", 3, 2027, None, NOW)  # valid through the end of its month
    for month, year, code in [
        (2, 2027, "expired_card"),
        (13, 2030, "invalid_expiry_month"),
        (1, 2080, "invalid_expiry_year"),
    ]:
        with pytest.raises(CardError) as caught:
            check_card("4242424242424242", month, year, None, NOW)
        assert caught.value.code == code
    assert check_card("4242424242424242", 1, 30, None, NOW)[0].exp_year == 2030


def test_cvc_length_depends_on_the_brand() -> None:
    assert check_card("378282246310005", 1, 2030, "1234", NOW)[1] == "1234"
    for number, cvc in [
        ("378282246310005", "123"),
        ("4242424242424242", "1234"),
        ("4242424242424242", "12a"),
    ]:
        with pytest.raises(CardError) as caught:
            check_card(number, 1, 2030, cvc, NOW)
        assert caught.value.code == "invalid_cvc"
        assert caught.value.param == "card[cvc]"


def test_a_card_number_never_prints_itself() -> None:
    pan = SecretPan("4242424242424242")
    for rendered in (str(pan), repr(pan), f"{pan}", f"{pan!r}", str([pan])):
        assert "4242424242424242" not in rendered
        assert "4242" in rendered


def test_luhn() -> None:
    assert luhn_valid("4242424242424242") and luhn_valid("79927398713")
    assert not luhn_valid("4242424242424243") and not luhn_valid("abc")


def test_the_log_filter_masks_luhn_valid_runs_only() -> None:
    line = "card 4242 4242 4242 4242 and 5555-5555-5555-4444, order 1234567890123456, ts 20270315120000"
    masked = redact_pans(line)
    assert "4242 4242 4242 4242" not in masked and "5555-5555-5555-4444" not in masked
    assert "[card ****4242]" in masked and "[card ****4444]" in masked
    assert "1234567890123456" in masked  # not Luhn-valid: kept
    assert "20270315120000" in masked


def test_log_records_and_exception_text_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("billing.test.vault")
    with caplog.at_level(logging.INFO, logger="billing.test.vault"):
        log.info("charging %s", "4000000000009995")
        try:
            raise ValueError("gateway echoed card 4000000000000002")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert "4000000000009995" not in text and "4000000000000002" not in text
    assert "[card ****9995]" in text and "[card ****0002]" in text


def test_keyring_parsing_names_the_problem() -> None:
    line = generate_key_line("k1")
    ring = parse_keyring(f"{line},{generate_key_line('k0')}")
    assert ring.active_id == "k1" and ring.ids == ("k1", "k0")
    assert "k1" in repr(ring) and line.split(":")[1] not in repr(ring)
    for bad in ("k1", "k1:notbase64!", "k1:" + "QUFB", f"{line},{line}", " , "):
        with pytest.raises(ConfigError):
            parse_keyring(bad)


def test_production_refuses_to_start_without_keys(tmp_path: Path) -> None:
    production = Settings(database_url=None, redis_url=None, data_dir=tmp_path, env="production")
    with pytest.raises(ConfigError, match="BILLING_VAULT_KEYS"):
        load_keyring(production)


def test_development_generates_one_private_key_file_and_reuses_it(tmp_path: Path) -> None:
    development = Settings(database_url=None, redis_url=None, data_dir=tmp_path / "data", env="development")
    first = load_keyring(development)
    key_file = tmp_path / "data" / "vault-keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_keyring(development) == first
    assert [p.name for p in key_file.parent.iterdir()] == ["vault-keys"]


async def test_a_sealed_number_is_bound_to_its_row(services: Services, merchant: NewMerchant) -> None:
    vault = services.vault
    async with transaction(services.sessions) as session:
        first = await vault.store(session, merchant.id, SecretPan("4242424242424242"))
        second = await vault.store(session, merchant.id, SecretPan("5555555555554444"))
    assert vault.reveal(first).reveal() == "4242424242424242"
    assert b"4242424242424242" not in first.ciphertext
    assert first.kek_id == vault.keyring.active_id
    # A ciphertext copied into another row does not decrypt: the row id is authenticated with it.
    first.ciphertext, second.ciphertext = second.ciphertext, first.ciphertext
    with pytest.raises(VaultKeyError):
        vault.reveal(first)


async def test_fingerprints_identify_a_card_per_merchant(
    services: Services, merchant: NewMerchant, other_merchant: NewMerchant
) -> None:
    vault = services.vault
    pan = SecretPan("4242424242424242")
    same = await vault.card_fingerprint(merchant.id, SecretPan("4242 4242 4242 4242".replace(" ", "")))
    assert await vault.card_fingerprint(merchant.id, pan) == same and len(same) == 16
    assert await vault.card_fingerprint(merchant.id, SecretPan("5555555555554444")) != same
    # Another merchant cannot correlate the same card.
    assert await vault.card_fingerprint(other_merchant.id, pan) != same


async def test_rotation_rewraps_every_data_key_and_keeps_numbers_and_fingerprints(
    services: Services, merchant: NewMerchant
) -> None:
    old = services.vault
    async with transaction(services.sessions) as session:
        entries = [
            await old.store(session, merchant.id, SecretPan(n))
            for n in ("4242424242424242", "5555555555554444")
        ]
    fingerprint = await old.card_fingerprint(merchant.id, SecretPan("4242424242424242"))

    new_line = generate_key_line("rotated")
    rotated_ring = parse_keyring(f"{new_line},{os.environ['BILLING_VAULT_KEYS']}")
    report = await rotate(services.sessions, rotated_ring, batch_size=1)
    assert report.remaining == {}
    assert report.rewrapped_entries >= 2 and report.rewrapped_secrets == 1

    # Only the new key is needed now, and the numbers and fingerprints are unchanged.
    only_new = Vault(parse_keyring(new_line), services.sessions)
    async with services.sessions() as session:
        rows = (
            await session.scalars(select(VaultEntry).where(VaultEntry.id.in_([e.id for e in entries])))
        ).all()
        assert {row.kek_id for row in rows} == {"rotated"}
        assert {only_new.reveal(row).reveal() for row in rows} == {"4242424242424242", "5555555555554444"}
        assert {r.ciphertext for r in rows} == {
            e.ciphertext for e in entries
        }  # numbers were not re-encrypted
    assert await only_new.card_fingerprint(merchant.id, SecretPan("4242424242424242")) == fingerprint

    # Rotate back so the rest of the run keeps using the run's key.
    back = await rotate(services.sessions, parse_keyring(f"{os.environ['BILLING_VAULT_KEYS']},{new_line}"))
    assert back.remaining == {}


async def test_the_rotate_command_rewraps_in_batches_and_reports(
    services: Services, merchant: NewMerchant, settings: Settings
) -> None:
    async with transaction(services.sessions) as session:
        for _ in range(5):
            await services.vault.store(session, merchant.id, SecretPan("4242424242424242"))
    run_key = os.environ["BILLING_VAULT_KEYS"]
    new_line = generate_key_line("cli")
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "BILLING_VAULT_KEYS": f"{new_line},{run_key}",
    }
    result = await run_process(
        [sys.executable, "-m", "billing", "vault", "rotate", "--batch-size", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["active_kek"] == "cli" and report["remaining"] == {} and report["rewrapped_entries"] >= 5
    async with services.sessions() as session:
        assert set((await session.scalars(select(VaultEntry.kek_id).distinct())).all()) == {"cli"}
        assert set((await session.scalars(select(VaultSecret.kek_id))).all()) == {"cli"}
    env["BILLING_VAULT_KEYS"] = f"{run_key},{new_line}"
    back = await run_process(
        [sys.executable, "-m", "billing", "vault", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert back.returncode == 0, back.stderr


async def test_a_row_under_a_key_the_process_lacks_fails_loudly(
    services: Services, merchant: NewMerchant
) -> None:
    async with transaction(services.sessions) as session:
        entry = await services.vault.store(session, merchant.id, SecretPan("4242424242424242"))
    async with transaction(services.sessions) as session:
        await session.execute(update(VaultEntry).where(VaultEntry.id == entry.id).values(kek_id="retired"))
    entry.kek_id = "retired"
    with pytest.raises(VaultKeyError, match="BILLING_VAULT_KEYS"):
        services.vault.reveal(entry)
