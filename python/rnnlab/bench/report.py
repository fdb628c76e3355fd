"""Formats the results of :func:`rnnlab.bench.suite.run` as plain-text or Markdown tables."""
from __future__ import annotations


def sgemm_reference(results: dict) -> float:
    """The sgemm rate fractions are taken against: the higher of the two measurements."""
    return max(results["sgemm_gflops"].values())


def table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*headers), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def _ms(timing: dict | None) -> str:
    if timing is None:
        return "–"
    noisy = " ~" if timing["q3"] - timing["q1"] > 0.1 * timing["median"] else ""
    return f"{1e3 * timing['median']:.2f}{noisy}"


def _percent(share: float | None) -> str:
    return "?" if share is None else f"{100 * share:.0f} %"


def machine_line(results: dict) -> str:
    m, s = results["machine"], results["sgemm_gflops"]
    jax = f", jax {m['jax']}" if m.get("jax") else ""
    return (f"{m['cpu']}, {m['cores']} cores, rnnlab kernels {m['rnnlab_isa']}, {m['threads']} torch threads; "
            f"torch {m['torch']}{jax}; sgemm (torch.mm 1024² float32) {s['start']:.0f} GFLOP/s at start, "
            f"{s['end']:.0f} at end; other processes used {_percent(results['other_load'])} of the cores meanwhile")


def single_table(results: dict, markdown: bool) -> str:
    sgemm = sgemm_reference(results)
    has_jax = any("jax" in r["times"] for r in results["single"])
    headers = ["config", "pass", "nn.RNN ms", "rnnlab.RNN ms", "× nn.RNN"]
    headers += ["JAX ms", "× JAX"] if has_jax else []
    headers += ["GFLOP/s", "% sgemm"]
    rows = []
    for r in results["single"]:
        t = r["times"]
        ours = t["rnnlab"]["median"]
        row = [r["label"], "fwd" if r["mode"] == "forward" else "fwd+bwd", _ms(t["nn.RNN"]), _ms(t["rnnlab"]),
               f"{t['nn.RNN']['median'] / ours:.1f}"]
        if has_jax:
            row += [_ms(t.get("jax")), f"{t['jax']['median'] / ours:.2f}" if "jax" in t else "–"]
        gflops = r["flops"] / ours / 1e9
        row += [f"{gflops:.1f}", f"{100 * gflops / sgemm:.0f}"]
        rows.append(row)
    return table(headers, rows, markdown)


def population_table(results: dict, markdown: bool) -> str:
    pop = results["population"]
    sgemm = sgemm_reference(results)
    fused = pop["times"]["rnnlab fused"]["median"]
    rows = []
    for impl, t in pop["times"].items():
        gflops = pop["flops"] / t["median"] / 1e9
        rows.append([impl, "fwd+bwd", _ms(t), f"{gflops:.1f}", f"{100 * gflops / sgemm:.1f}",
                     f"{t['median'] / fused:.2f}"])
    return table(["implementation", "pass", "ms", "GFLOP/s", "% sgemm", "rnnlab fused ×"], rows, markdown)


def breakdown_table(parts: dict[str, dict[str, float]], markdown: bool) -> str:
    """parts: config label -> {part name: seconds} (breakdown.breakdown) -> one column per config."""
    labels = list(parts)
    names = list(dict.fromkeys(name for label in labels for name in parts[label]))  # union, in order
    rows = [[name, *(f"{1e3 * parts[label][name]:.2f}" if name in parts[label] else "–" for label in labels)]
            for name in names]
    return table(["part (ms)", *labels], rows, markdown)


def render(results: dict, markdown: bool = False) -> str:
    """The whole report: machine, single-layer table, population table (the speed targets are
    checked from the JSON results by benchmarks/elman_targets.py)."""
    parts = [machine_line(results)]
    if (results["other_load"] or 0) > 0.1:
        parts.append("WARNING: other processes were busy during this run; the timings of multi-threaded cases "
                     "are inflated (see docs/performance.md) and not comparable.")
    parts += ["", single_table(results, markdown)]
    if results["population"] is not None:
        pop = results["population"]
        parts += ["", f"Population {pop['label']} ({pop['flops'] / 1e9:.2f} GFLOP of recurrent work per pass):", "",
                  population_table(results, markdown)]
    parts += ["", "ms: median wall time of one call (~: interquartile range > 10 % of the median); "
              "GFLOP/s: useful recurrent work (6·M·T·B·H² forward+backward, 2·M·T·B·H² forward) / rnnlab's time."]
    return "\n".join(parts)
