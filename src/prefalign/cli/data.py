"""`prefalign data audit` (`AuditConfig`): a report on a preference file; `prefalign data
relabel` (`RelabelConfig`): reward-augmented relabeling."""

from __future__ import annotations

import argparse

from .schema import add_settings, settings_from


def _cmd_audit(args: argparse.Namespace) -> int:
    from prefalign.eval.audit import audit_file
    from prefalign.eval.config import AuditConfig

    cfg = settings_from(AuditConfig, args)
    summary = audit_file(cfg.data, eval_data=cfg.eval_data, model=cfg.model,
                         ref_model=cfg.ref_model, max_length=cfg.max_length, beta=cfg.beta,
                         noise_threshold=cfg.noise_threshold, output=cfg.output,
                         device=cfg.device)
    stats = summary["statistics"]
    print(f"{summary['data']}: {stats['rows']} rows, {stats['loaded']} loaded, "
          f"{stats['refused']} refused; {len(summary['findings'])} kinds of finding")
    for f in summary["findings"]:
        print(f"  {f['check']}: {f['count']} (first: {f['rows'][0]})")
    bias = stats["length_bias"]
    if bias["chosen_longer"] is not None:
        print(f"  length bias: the chosen response is longer in {bias['chosen_longer']:.0%} of "
              f"{bias['pairs']} pairs ({bias['unit']})")
    out = summary["output"]
    print(f"wrote {out}/audit.md, audit.html, audit.json and {len(summary['plots'])} plots")
    return 0


def _cmd_relabel(args: argparse.Namespace) -> int:
    from prefalign.data import load_records
    from prefalign.data.relabel import RelabelConfig, reward_augment
    from prefalign.data.writers import save_records

    cfg = settings_from(RelabelConfig, args)
    records, report = load_records(cfg.data)
    pairs, dropped = reward_augment(records, template=cfg.template, digits=cfg.digits)
    save_records(pairs, cfg.output)
    print(f"{cfg.data}: {report.rows} rows; wrote {len(pairs)} score-conditioned pairs to "
          f"{cfg.output}; dropped {dict(dropped)}")
    return 0


def add_data_parser(sub) -> None:
    from prefalign.data.relabel import RelabelConfig
    from prefalign.eval.config import AuditConfig

    p = sub.add_parser("data", help="look at preference data: audit, relabel")
    data = p.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    a = data.add_parser("audit", help="a report on a preference file: duplicates, leakage, "
                                      "length bias, refused rows, suspected label noise")
    add_settings(a, AuditConfig)
    a.set_defaults(func=_cmd_audit)
    r = data.add_parser("relabel", help="reward-augmented relabeling: each scored pair as two "
                                        "pairs conditioned on a target score")
    add_settings(r, RelabelConfig)
    r.set_defaults(func=_cmd_relabel)
