"""What a resumable agreement run's state file holds, without running anything.

    python benchmarks/agreement_report.py [STATE ...]

STATE defaults to every ``*.jsonl`` in ~/.cache/promref/agreement/.  Prints,
per file, its identity and, per part (a rounding mode, "host_logits",
"mcu", ...): images done (the chunks must tile [0, done) without a gap),
images compared at every layer, mismatches (all layers; the logits alone), and
the seconds the chunks took.  Exits 1 when any mismatch is recorded.
"""
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from agreement_state import DEFAULT_DIR, read_records  # noqa: E402


def report(path):
    """Print one state file's figures -> its total mismatches."""
    records = read_records(path)
    if not records or records[0].get("kind") != "header":
        print(f"{path}: no header; not a state file")
        return 0
    print(f"{path} (created {records[0].get('created')}):")
    for key, value in records[0]["identity"].items():
        print(f"    {key}: {value}")
    chunks = [r for r in records[1:] if r.get("kind") == "chunk"]
    total = 0
    for part in dict.fromkeys(c["part"] for c in chunks):
        mine = sorted((c for c in chunks if c["part"] == part), key=lambda c: c["start"])
        done = 0
        for c in mine:
            if c["start"] != done:
                print(f"  {part}: GAP at image {done}")
                break
            done = c["stop"]
        if part == "random":
            bad = sum(mine[0]["mismatches_per_model"].values())
            print(f"  random: {len(mine[0]['mismatches_per_model'])} models, {mine[0]['images_each']} images each, "
                  f"every layer: {bad} mismatches")
            total += bad
            continue
        traced = [c for c in mine if len(c.get("layer_mismatches", {})) > 1]
        layer_bad = sum(sum(c["layer_mismatches"].values()) for c in traced)
        # the logits: TOSA chunks count them apart; a C chunk's only layer is the logits, or they are in the trace
        logit_bad = sum(int(c["logit_mismatches"]) if "logit_mismatches" in c else
                        sum(c["layer_mismatches"].values()) * (c not in traced) for c in mine)
        seconds = sum(float(c["seconds"]) for c in mine)
        print(f"  {part}: {done:,} images done ({len(mine)} chunks, {seconds:.0f} s, last finished "
              f"{mine[-1]['finished']}); every layer on {sum(c['stop'] - c['start'] for c in traced):,} images: "
              f"{layer_bad} mismatches; logits on {done:,} images: {logit_bad} mismatches"
              + (" (counted in every layer)" if traced and "logit_mismatches" not in mine[0] else ""))
        total += layer_bad + logit_bad
    return total


def main(argv):
    paths = argv or sorted(glob.glob(os.path.join(DEFAULT_DIR, "*.jsonl")))
    total = sum(report(p) for p in paths)
    print(f"total mismatches recorded: {total}")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
