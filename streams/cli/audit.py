"""``placewatch audit``: verify, show, replay and export the audit trail (docs/audit.md)."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from detectors.sampler import AuditSampler
from streams.app import rederive_records
from streams.audit.retention import add_hold, holds, purge, release_hold
from streams.audit.signing import generate_key, load_verifier, read_witness
from streams.audit.store import export_records, find_records, published_head, stored_bodies
from streams.audit.verify import verify_store
from streams.cli.support import ConfigOpt, make_parent, settings_for
from streams.errors import PlacewatchError
from streams.logs import log_event
from streams.settings import Settings
from streams.sources.files import check_inputs, file_events

__all__ = ["audit_app"]

_LOG = logging.getLogger("placewatch")

audit_app = typer.Typer(help="Inspect and verify the audit store.", no_args_is_help=True,
                        rich_markup_mode="markdown")


@audit_app.command("verify")
def audit_verify(
    store: Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)],
    expect_head: Annotated[str | None, typer.Option(
        help="Head hash published outside the store (a log line, a report). Default: "
             "audit_head from summary.json beside the store, when there is one.")] = None,
    public_key: Annotated[str | None, typer.Option(
        help="The signing key's public half (base64, or a file holding it, as audit keygen "
             "prints): every hold, release, purge and checkpoint must be signed by it.")
    ] = None,
    witness: Annotated[Path | None, typer.Option(
        help="A file of signed checkpoints published outside the store (audit_witness_path): "
             "the store must agree with every one.", dir_okay=False)] = None,
    witness_store_id: Annotated[str | None, typer.Option(
        help="Check only the witness lines of this store_id (a dump of the Kafka audit topic "
             "holds every worker's; the store_id is in each line and message key).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Check the audit store's hash chain and its published head.

    Exit 0 when intact; 1 naming the first record that was changed, removed, reordered or
    inserted, or when the head differs from the published one (records removed from the end);
    4 when the store cannot be read.
    """
    settings = settings_for(config)
    verifier = load_verifier(public_key) if public_key is not None else None
    witnessed = (read_witness(witness, "--witness", witness_store_id)
                 if witness is not None else None)
    anchor = "none"
    expect_records = None
    if expect_head is not None:
        anchor = "--expect-head"
    else:
        published = published_head(store)
        if published is not None:
            expect_records, expect_head = published
            anchor = str(store.parent / "summary.json")
    result = verify_store(store, expect_head, expect_records, verifier, witnessed,
                          settings.audit_retention_days)
    if result.ok:
        signed = ", signatures of the key" if verifier is not None else ""
        witnessed_by = f", the witness {witness}" if witness is not None else ""
        typer.echo(f"OK: {result.records} records, head {result.head} (checked against: "
                   f"{anchor}{signed}{witnessed_by})")
        if expect_head is None:
            typer.echo("WARNING: no published head to check against (no summary.json naming "
                       "this store beside it, no --expect-head): records removed from the end "
                       "together with their checkpoints cannot be detected. Pass the head "
                       "from the run's summary or log with --expect-head.", err=True)
        return
    typer.echo(f"TAMPERED: {result.problem}", err=True)
    raise typer.Exit(1)


def _signed_store_or_refuse(store: Path, settings: Any) -> None:
    """With a signing key configured, a retention command first checks the store under it
    (and its witness): a forged hold or release must not steer what is kept or purged."""
    signer = settings.signer()
    if signer is None:
        return
    witness = settings.witness
    lines = (read_witness(witness, "audit_witness_path")
             if witness is not None and witness.is_file() else None)
    result = verify_store(store, verifier=load_verifier(signer.public_key), witness=lines)
    if not result.ok:
        raise PlacewatchError(f"{store} does not verify under the signing key "
                              f"({result.problem}): nothing was changed")


@audit_app.command("keygen")
def audit_keygen(
    out: Annotated[Path, typer.Option(help="File to write the new private key to (mode 600; "
                                      "it must not exist).", dir_okay=False)],
) -> None:
    """Make an Ed25519 signing key for the audit store's retention records and checkpoints.

    Writes the private key to OUT (point audit_signing_key_file at it, or put its content in
    PLACEWATCH_AUDIT_SIGNING_KEY) and prints the public key, which auditors pass to audit verify
    --public-key. Keep the private key away from the data directory and its backups.
    """
    settings_for(None)
    private, public = generate_key()
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise PlacewatchError(f"--out: cannot create {out}: {exc.strerror or exc}") from exc
    with os.fdopen(descriptor, "w") as handle:
        handle.write(private + "\n")
    typer.echo(f"public key: {public}")


@audit_app.command("show")
def audit_show(
    decision_id: Annotated[str, typer.Argument(help="The decision whose audit record to show.",
                                               metavar="DECISION_ID")],
    store: Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)] = Path("placewatch-data/audit.sqlite"),
) -> None:
    """Show one decision's audit record: why it was sampled, the event, the state around it."""
    settings_for(None)
    found = find_records(store, decision_id)
    if not found:
        typer.echo(f"no audit record for decision {decision_id} in {store} (was it sampled?)",
                   err=True)
        raise typer.Exit(1)
    for entry in found:
        typer.echo(_readable(entry))


def _readable(entry: dict[str, Any]) -> str:
    """One record as a person reads it: what, why sampled, what if, and the proof."""
    record = entry["record"]
    if record is None:
        return (f"record {entry['seq']} of the chain: purged under the retention policy "
                f"(hash {entry['hash']} stays in the chain; see the purge record after it)")
    decision = record.get("decision") or {}
    lines = [f"decision {record.get('decision_id')}  (record {entry['seq']} of the chain)",
             f"  decided at      {record.get('decided_at')}",
             f"  decision        {decision.get('label')} (action {decision.get('action')}, "
             f"preferred tier: {'yes' if decision.get('preferred') else 'no'})",
             f"  input position  event {record.get('event_index')}",
             f"  sampled because {', '.join(record.get('sampled_because', []))} "
             f"(draw {record.get('sample_draw')})"]
    if record.get("open_alerts"):
        lines.append("  open alerts     " + "; ".join(
            f"{k[0]} on {k[1]}={k[2]} ({k[3]})" for k in record["open_alerts"]))
    lines.append("  groups at the time:")
    for attribute, state in (record.get("group_state") or {}).items():
        lines.append(f"    {attribute}={state.get('group')}: {state.get('decisions')} "
                     f"decisions, cheap-tier share {state.get('preferred_rate')}")
    lines += _explained(record)
    lines += [f"  event sha256    {record.get('event_sha256')}",
              f"  config hash     {record.get('config_hash')}",
              f"  versions        {record.get('versions')}"]
    if record.get("redacted_fields"):
        lines.append(f"  redacted        {', '.join(record['redacted_fields'])}")
    lines += [f"  chain           prev {entry['prev_hash']}",
              f"                  this {entry['hash']}", "  event:",
              "    " + str(record.get("event"))]
    return "\n".join(lines)


def _explained(record: dict[str, Any]) -> list[str]:
    if record.get("deferred"):
        return ["  explanations    deferred (the deep-audit backlog was full); "
                "`placewatch audit replay` derives them from the archived events"]
    explanations = record.get("explanations") or {}
    model = record.get("shadow_model") or {}
    lines = ["  cost drivers:"] + [f"    - {d}" for d in explanations.get("cost_drivers", [])]
    shadow = explanations.get("shadow") or {}
    if not shadow.get("ready"):
        return [*lines, f"  shadow model    {shadow.get('note', 'not available')}"]
    lines.append(f"  shadow model    predicts {shadow['predicted']} (p={shadow['probability']}, "
                 f"{'agrees' if shadow['agrees'] else 'DISAGREES'}); {model.get('version')} "
                 f"examples, recent accuracy {model.get('accuracy')}, sha256 "
                 f"{str(model.get('sha256'))[:16]}…")
    flips = explanations.get("group_flips") or {}
    if flips.get("flipped"):
        lines.append(f"  group flip      {len(flips['flipped'])} of {flips['checked']} other "
                     "attribute values change the decision:")
        lines += [f"    - as {f['attribute']}={f['value']}: {f['predicted']} (p={f['probability']})"
                  for f in flips["flipped"]]
    else:
        lines.append(f"  group flip      none of {flips.get('checked', 0)} other attribute "
                     "values changes the decision")
    goals = {"preferred_tier": "to get a preferred tier", "deadline_met": "to meet the deadline"}
    for goal, answer in (explanations.get("smallest_change") or {}).items():
        wanted = goals.get(goal, goal)
        if answer.get("already"):
            lines.append(f"  smallest change {wanted}: none needed, the shadow scheduler would "
                         "already give it (the real decision differs)")
            continue
        alternatives = answer.get("alternatives") or []
        if not alternatives:
            lines.append(f"  smallest change {wanted}: none within the allowed values")
        else:
            lines.append(f"  smallest change {wanted}:")
        for alt in alternatives:
            change = ", ".join(f"{k} {v[0]} -> {v[1]}" for k, v in alt["changes"].items())
            lines.append(f"    - {change} (distance {alt['distance']}, p={alt['probability']})")
    return lines


@audit_app.command("replay")
def audit_replay(
    decisions: Annotated[list[str] | None, typer.Argument(
        help="Decisions to re-derive (default: every record in the store).",
        metavar="DECISION_ID")] = None,
    events: Annotated[list[Path] | None, typer.Option(
        "--events", "-e", help="The archived event files the run read, in order (repeat).",
        dir_okay=False)] = None,
    store: Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)] = Path("placewatch-data/audit.sqlite"),
    config: ConfigOpt = None,
) -> None:
    """Re-derive audit records from the archived events and check they are bit-identical.

    Runs the pipeline over the events with the given configuration, collects the audit
    records it writes, and compares them byte for byte with the store. Exit 0 when every
    requested record is reproduced; 1 naming each one that differs or is missing.
    """
    settings = settings_for(config)
    if not events:
        raise PlacewatchError("--events: give the event files the audited run read")
    check_inputs(events)
    stored = stored_bodies(store)
    wanted = decisions or list(stored)
    missing_here = [d for d in wanted if d not in stored]
    if missing_here:
        raise PlacewatchError(f"no audit record in {store} for: {', '.join(missing_here[:5])}")
    purged = [d for d in wanted if any(body is None for body in stored[d])]
    if purged and decisions:
        raise PlacewatchError(f"purged under the retention policy: {', '.join(purged[:5])}")
    wanted = [d for d in wanted if d not in purged]
    legacy = _check_same_configuration(settings, {d: stored[d] for d in wanted})
    rederived = rederive_records(settings, file_events(events))
    for decision in legacy:  # records from before the key left config_hash carry the old one
        rederived[decision] = [body.replace(settings.config_hash.encode(),
                                            settings.legacy_config_hash.encode())
                               for body in rederived.get(decision, [])]
    bad = [d for d in wanted if rederived.get(d) != stored[d]
           and not _deferred_matches(rederived.get(d), stored[d])]
    # a complete store holds every record the events produce (only when checking them all)
    absent = [] if decisions else [d for d in rederived if d not in stored]
    for decision in bad[:20]:
        typer.echo(f"NOT REPRODUCED: {decision}: {_why(rederived.get(decision), stored[decision])}",
                   err=True)
    for decision in absent[:20]:
        typer.echo(f"MISSING FROM STORE: {decision}: the events produce a record for it",
                   err=True)
    if bad or absent:
        typer.echo(f"{len(wanted) - len(bad)} of {len(wanted)} records reproduced; "
                   f"{len(absent)} missing from the store", err=True)
        raise typer.Exit(1)
    note = f" ({len(purged)} purged records skipped)" if purged else ""
    typer.echo(f"OK: {len(wanted)} of {len(wanted)} records reproduced bit-identically; the "
               f"store is complete{note}" if not decisions else
               f"OK: {len(wanted)} of {len(wanted)} records reproduced bit-identically")


def _check_same_configuration(settings: Settings,
                              stored: dict[str, list[bytes | None]]) -> set[str]:
    """Refuse to re-derive under another configuration than the records were made with;
    return the decisions whose records carry the legacy ``config_hash``.

    ``config_hash`` holds no secret, so the sampling key is checked through the records'
    draws: each record's ``sample_draw`` is the key's keyed hash of its decision id.
    """
    records = [(d, orjson.loads(body)) for d, bodies in stored.items() for body in bodies
               if body is not None]
    hashes = {record.get("config_hash") for _, record in records}
    if not hashes <= {settings.config_hash, settings.legacy_config_hash}:
        raise PlacewatchError("the configuration differs from the audited run's (config_hash "
                              f"{', '.join(sorted(map(str, hashes)))} in the records, "
                              f"{settings.config_hash} now): pass the same --config and "
                              "PLACEWATCH_* settings")
    core = settings.core
    sampler = AuditSampler(core.audit_sample_rate, core.audit_sample_key,
                           core.audit_always_overrides, core.shadow_train_rate,
                           core.audit_open_alert_rate)
    # the pipeline's draw, even at rate 0; a key is wrong when no record's draw is its own
    # (a record whose draw alone differs was changed, and the comparison below names it)
    draws = ((decision, record.get("sample_draw"), round(sampler.draw(decision), 9))
             for decision, record in records)
    wrong = [(decision, stored, own) for decision, stored, own in draws if stored != own]
    if records and len(wrong) == len(records):
        decision, stored_draw, draw = wrong[0]
        raise PlacewatchError(
            f"the audit_sample_key differs from the audited run's: decision {decision}'s "
            f"record has the draw {stored_draw}, this key gives {draw}; set the run's key "
            "(PLACEWATCH_AUDIT_SAMPLE_KEY)")
    return {d for d, record in records if record.get("config_hash") != settings.config_hash}


def _why(rederived: list[bytes] | None, stored: list[bytes | None]) -> str:
    """Why a stored record differs from the re-derived one, as far as the records tell."""
    if rederived is None:
        return "the events produce no record for it"
    if len(rederived) != len(stored):
        return f"{len(stored)} records stored, {len(rederived)} re-derived"
    for new_bytes, body in zip(rederived, stored, strict=True):
        if body is None or new_bytes == body:
            continue
        old, new = orjson.loads(body), orjson.loads(new_bytes)
        was = (old.get("shadow_model") or {}).get("version")
        now = (new.get("shadow_model") or {}).get("version")
        if was is not None and was != now:
            return (f"explained by a shadow model that had learned {was} examples, re-derived "
                    f"with {now}: the live worker skipped training examples under load "
                    "(placewatch_shadow_training_skipped_total)")
        fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return "differs in " + ", ".join(fields)
    return "differs"


def _deferred_matches(rederived: list[bytes] | None, stored: list[bytes | None]) -> bool:
    """A deferred record matches when everything it holds is what the full record says."""
    if rederived is None or len(rederived) != len(stored):
        return False
    for full_bytes, body in zip(rederived, stored, strict=True):
        if body is None:
            return False
        kept = orjson.loads(body)
        if "deferred" not in kept:
            if full_bytes != body:
                return False
            continue
        full = orjson.loads(full_bytes)
        if any(full.get(k) != v for k, v in kept.items() if k != "deferred"):
            return False
    return True


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .jsonl, or .parquet.",
                                      dir_okay=False)],
    store: Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)] = Path("placewatch-data/audit.sqlite"),
) -> None:
    """Export every audit record, with its chain hashes, for an outside auditor.

    JSON lines (``.jsonl``) hold each record with ``seq``, ``prev_hash``, ``hash``,
    ``body_sha256`` and ``body``, the exact text that was hashed. Parquet (``.parquet``) holds
    the same columns plus flat ones for filtering (decision, time, sampled because, decision
    label, shadow prediction, flips); ``body`` carries the full record.
    """
    settings_for(None)
    make_parent(out)
    rows = export_records(store)
    if out.suffix == ".parquet":
        count = _write_parquet(out, rows)
    elif out.suffix in (".jsonl", ".json", ".ndjson"):
        count = 0
        with out.open("wb") as handle:
            for row in rows:
                handle.write(orjson.dumps(row) + b"\n")
                count += 1
    else:
        raise PlacewatchError(f"--out: use a .jsonl or .parquet file name, got {out.name}")
    log_event(_LOG, logging.INFO, "exported", records=count, out=str(out))


def _write_parquet(out: Path, rows: Any) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {k: [] for k in (
        "seq", "decision_id", "decided_at", "sampled_because", "decision_label", "preferred",
        "shadow_predicted", "group_flips", "deferred", "purged", "prev_hash", "hash",
        "body_sha256", "body")}
    for row in rows:
        record = row["record"] or {}
        explanations = record.get("explanations") or {}
        shadow = explanations.get("shadow") or {}
        flips = (explanations.get("group_flips") or {}).get("flipped")
        decision = record.get("decision") or {}
        for key, value in (
                ("seq", row["seq"]), ("decision_id", row["decision_id"]),
                ("decided_at", record.get("decided_at")),
                ("sampled_because", record.get("sampled_because")),
                ("decision_label", decision.get("label")), ("preferred", decision.get("preferred")),
                ("shadow_predicted", shadow.get("predicted")),
                ("group_flips", None if flips is None else len(flips)),
                ("deferred", "deferred" in record), ("purged", row["body"] is None),
                ("prev_hash", row["prev_hash"]), ("hash", row["hash"]),
                ("body_sha256", row["body_sha256"]), ("body", row["body"])):
            columns[key].append(value)
    schema = pa.schema([("seq", pa.int64()), ("decision_id", pa.string()),
                        ("decided_at", pa.string()), ("sampled_because", pa.list_(pa.string())),
                        ("decision_label", pa.string()), ("preferred", pa.bool_()),
                        ("shadow_predicted", pa.string()), ("group_flips", pa.int64()),
                        ("deferred", pa.bool_()), ("purged", pa.bool_()),
                        ("prev_hash", pa.string()), ("hash", pa.string()),
                        ("body_sha256", pa.string()), ("body", pa.string())])
    pq.write_table(pa.table(columns, schema=schema), out)
    return len(columns["seq"])


def _now(value: str | None) -> str:
    if value is not None:
        return value
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


StoreOpt = Annotated[Path, typer.Option(help="Audit store (audit.sqlite in a run directory).",
                                        dir_okay=False)]


@audit_app.command("hold")
def audit_hold(
    reason: Annotated[str, typer.Option(help="Why the records must be kept (case, request).")],
    store: StoreOpt = Path("placewatch-data/audit.sqlite"),
    decision: Annotated[str | None, typer.Option(help="Hold one decision's records.")] = None,
    group: Annotated[str | None, typer.Option(
        help="Hold a group's records, as ATTRIBUTE=GROUP (team=genomics).")] = None,
    start: Annotated[str | None, typer.Option(
        "--from", help="Hold records decided at or after this ISO 8601 time.")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="Hold records decided before this ISO 8601 time.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Place a legal hold: matching records survive every purge until it is released.

    Scopes combine (a group within a time range). The hold is itself a chained record, signed
    when a signing key is configured.
    """
    settings = settings_for(config)
    attribute = value = None
    if group is not None:
        attribute, sep, value = group.partition("=")
        if not sep or not attribute or not value:
            raise PlacewatchError(f"--group: use ATTRIBUTE=GROUP, got {group!r}")
    _signed_store_or_refuse(store, settings)
    seq = add_hold(store, reason, _now(None), decision, attribute, value, start, end,
                   settings.signer(), settings.witness)
    log_event(_LOG, logging.INFO, "legal hold placed", hold=seq, store=str(store))
    typer.echo(f"hold {seq} placed")


@audit_app.command("release")
def audit_release(
    hold: Annotated[int, typer.Argument(help="The hold's number (from `audit holds`).",
                                        metavar="HOLD")],
    reason: Annotated[str, typer.Option(help="Why the hold ends.")],
    store: StoreOpt = Path("placewatch-data/audit.sqlite"),
    config: ConfigOpt = None,
) -> None:
    """Release a legal hold (recorded in the chain, signed when a signing key is configured)."""
    settings = settings_for(config)
    _signed_store_or_refuse(store, settings)
    release_hold(store, hold, reason, _now(None), settings.signer(), settings.witness)
    typer.echo(f"hold {hold} released")


@audit_app.command("holds")
def audit_holds(store: StoreOpt = Path("placewatch-data/audit.sqlite")) -> None:
    """List the legal holds in force."""
    settings_for(None)
    found = holds(store)
    if not found:
        typer.echo("no legal holds in force")
    for h in found:
        scope = ", ".join(f"{k}={v}" for k, v in (
            ("decision", h.decision_id), ("group", f"{h.attribute}={h.group}" if h.attribute
                                          else None), ("from", h.start), ("to", h.end)) if v)
        typer.echo(f"hold {h.seq}: {scope} ({h.reason})")


@audit_app.command("purge")
def audit_purge(
    store: StoreOpt = Path("placewatch-data/audit.sqlite"),
    retention_days: Annotated[int | None, typer.Option(
        help="Keep records this many days (default: the audit_retention_days setting, 400).",
        min=1)] = None,
    now: Annotated[str | None, typer.Option(
        help="Purge as of this ISO 8601 time (default: now).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Delete the bodies of audit records older than the retention period.

    Records under a legal hold are kept. The chain stays verifiable: each emptied record keeps
    its hashes, and a purge record listing exactly which records were emptied is appended.
    """
    settings = settings_for(config)
    days = retention_days or settings.audit_retention_days
    at = _now(now)
    try:
        moment = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise PlacewatchError(f"--now: not an ISO 8601 time: {now!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if moment > dt.datetime.now(dt.UTC) + dt.timedelta(hours=1):
        raise PlacewatchError(f"--now: {at} is in the future; audit verify would reject the "
                              "purge")
    if days < settings.audit_retention_days:
        raise PlacewatchError(f"--retention-days: {days} is less than the configured "
                              f"audit_retention_days ({settings.audit_retention_days}); audit "
                              "verify would reject the purge. Change the setting first")
    _signed_store_or_refuse(store, settings)
    result = purge(store, days, moment, settings.signer(), settings.witness)
    log_event(_LOG, logging.INFO, "purge finished", purged=result.purged, held=result.held,
              cutoff=result.cutoff, purge_record=result.purge_seq, store=str(store))
    typer.echo(f"purged {result.purged} records decided before {result.cutoff}; "
               f"{result.held} kept by legal holds")
