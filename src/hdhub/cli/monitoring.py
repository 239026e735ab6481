"""`hdhub monitoring …`: devices, enrolled patients, the MQTT subscriber, rejection counts."""

from __future__ import annotations

from pathlib import Path

import typer

from hdhub.cli.context import console, new_app, state
from hdhub.errors import ValidationError

app = new_app("Remote monitoring: patients' devices, thresholds, the MQTT subscriber.")
device_app = new_app("Patients' devices and their tokens.")
app.add_typer(device_app, name="device")

PATIENT_HELP = "system|value of one of the patient's identifiers (INS, a site's IPP …)."


def _person(st: object, identifier: str) -> str:
    from hdhub.cohorts.service import persons_with_identifier
    from hdhub.errors import Conflict

    keys = persons_with_identifier(st.hub.identities, identifier)  # type: ignore[attr-defined]
    if len(keys) > 1:
        raise Conflict("several persons hold this identifier: use a more specific one")
    return keys[0]


@device_app.command("add")
def device_add(
    ctx: typer.Context,
    device_id: str = typer.Argument(..., help="The device's identifier (serial number)."),
    patient: str = typer.Option(..., "--patient", help=PATIENT_HELP),
    kind: str | None = typer.Option(None, help="What it is, e.g. 'blood pressure cuff'."),
) -> None:
    """Register DEVICE_ID for a patient; prints its token (once)."""
    from sqlalchemy.orm import Session

    from hdhub.monitoring.devices import register_device

    st = state(ctx)
    decision = st.authorize("monitoring:manage")
    person = _person(st, patient)
    with Session(st.hub.catalog) as s, s.begin():
        secret = register_device(s, device_id, person, kind)
    st.audit(
        "monitoring.device-add", decision, resource_type="device", resource_id=device_id, patient_id=person
    )
    console.print(secret, highlight=False)


@device_app.command("revoke")
def device_revoke(ctx: typer.Context, device_id: str = typer.Argument(...)) -> None:
    """Revoke a device: its token and its MQTT messages are refused from now on."""
    from sqlalchemy.orm import Session

    from hdhub.monitoring.devices import revoke_device

    st = state(ctx)
    decision = st.authorize("monitoring:manage")
    with Session(st.hub.catalog) as s, s.begin():
        revoke_device(s, device_id)
    st.audit("monitoring.device-revoke", decision, resource_type="device", resource_id=device_id)
    console.print(f"device {device_id} revoked", highlight=False)


@app.command()
def enrol(
    ctx: typer.Context,
    patient: str = typer.Argument(..., help=PATIENT_HELP),
    heart_failure: bool = typer.Option(False, "--heart-failure", help="Turn the weight-gain rule on."),
    threshold: list[str] = typer.Option(
        [], "--threshold", help="rule.name=number, e.g. tachycardia.medium=110."
    ),
) -> None:
    """Enrol a patient in monitoring, with their own thresholds."""
    from sqlalchemy.orm import Session

    from hdhub.monitoring.devices import enrol as run
    from hdhub.monitoring.rules import parse_threshold

    st = state(ctx)
    decision = st.authorize("monitoring:manage")
    person = _person(st, patient)
    overrides: dict[str, dict[str, float]] = {}
    for text in threshold:
        rule, name, value = parse_threshold(text)
        overrides.setdefault(rule, {})[name] = value
    with Session(st.hub.catalog) as s, s.begin():
        run(s, person, heart_failure=heart_failure, overrides=overrides)
    st.audit("monitoring.enrol", decision, resource_type="monitored_patient", patient_id=person,
             detail={"heart_failure": heart_failure, "thresholds": overrides})  # fmt: skip
    console.print(f"person {person[:12]}… enrolled", highlight=False)


@app.command()
def mqtt(
    ctx: typer.Context,
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="mqtt://host[:port]"),
    seconds: float | None = typer.Option(
        None, min=0.1, help="Stop after this long (default: run until Ctrl-C)."
    ),
    client_id: str = typer.Option(
        "hdhub-monitoring",
        help="The broker session's id: messages not yet stored wait in it for the next run with the same "
        "id. One per deployment sharing a broker.",
    ),
) -> None:
    """Subscribe to hdhub/devices/+/vitals and handle devices' messages as they come."""
    from hdhub.monitoring.mqtt import TOPIC, Subscriber

    st = state(ctx)
    decision = st.authorize("monitoring:manage")
    if not 1 <= len(client_id) <= 23 or not client_id.isascii() or not client_id.replace("-", "").isalnum():
        raise ValidationError("--client-id: 1 to 23 letters, digits or '-' (what every MQTT broker accepts)")
    subscriber = Subscriber(st.hub.catalog, broker, client_id=client_id)
    st.audit("monitoring.mqtt", decision, resource_type="broker", resource_id=broker)
    console.print(f"subscribed to {TOPIC} on {broker}", highlight=False)
    stats = subscriber.run(seconds)
    console.print(
        f"{stats.messages:,} messages: {stats.accepted:,} values stored, {stats.duplicates:,} duplicates, "
        f"{stats.rejected:,} rejected, {stats.alerts:,} alerts",
        highlight=False,
    )
    for error in stats.errors[:5]:
        console.print(f"error: {error}", style="red", highlight=False)


@app.command()
def rejections(ctx: typer.Context) -> None:
    """Refused device messages, counted by reason."""
    from hdhub.monitoring.service import rejection_counts

    st = state(ctx)
    st.authorize("monitoring:manage")
    counts = rejection_counts(st.hub.catalog)
    for reason, n in sorted(counts.items()):
        console.print(f"{reason:18} {n:,}", highlight=False)
    if not counts:
        console.print("no rejections", highlight=False)


@app.command()
def replay(
    ctx: typer.Context,
    directory: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="A directory with devices.json."
    ),
) -> None:
    """Register the devices of DIRECTORY/devices.json and send their streams (hdhub synth --devices)."""
    from hdhub.monitoring.replay import replay_streams

    st = state(ctx)
    decision = st.authorize("monitoring:manage")
    result = replay_streams(st.hub, directory)
    detail = {"devices": result.devices, "accepted": result.accepted, "alerts": len(result.alerts)}
    st.audit("monitoring.replay", decision, resource_type="device-streams", resource_id=str(directory),
             detail=detail)  # fmt: skip
    console.print(
        f"{result.devices:,} devices: {result.accepted:,} values stored, {result.duplicates:,} duplicates, "
        f"{result.rejected:,} rejected, {len(result.alerts):,} alerts",
        highlight=False,
    )
    for patient in result.unknown_patients[:5]:
        console.print(
            f"no single patient holds {patient}: its device was skipped", style="yellow", highlight=False
        )


@app.command()
def flush(ctx: typer.Context) -> None:
    """Write the devices' values into OMOP measurement and device_exposure (run it every few minutes)."""
    from hdhub.monitoring.omop import flush as run

    st = state(ctx)
    decision = st.authorize("warehouse:load")
    result = run(st.hub.catalog, st.hub.warehouse)
    detail = {"measurements": result.measurements, "devices": result.devices, "waiting": result.waiting}
    st.audit("monitoring.flush", decision, resource_type="warehouse", detail=detail)
    console.print(
        f"{result.measurements:,} measurements and {result.devices:,} new device exposures written"
        + (f"; {result.waiting:,} values wait for their patient's load" if result.waiting else "")
        + (
            ""
            if result.linked
            else "; measurement_event_id left empty (the vocabulary lacks the CDM field concepts)"
        ),
        highlight=False,
    )
