"""The study's Markdown report: settings, the per-method table (with the study paper's figures where known),
convergence and data use, and the statistics."""
from __future__ import annotations


def _f(v, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def _p(v) -> str:
    return "—" if v is None else (f"{v:.3g}" if v >= 1e-3 else f"{v:.1e}")


def markdown(doc: dict, figures: dict[str, str]) -> str:
    task, methods = doc["task"], doc["methods"]
    cfg = doc.get("config", {})
    h = doc.get("hyper", {})
    lines = [f"# Selective-learning study: {doc['dataset']}", ""]
    lines += [f"{doc.get('trials', '?')} trials (stratified 80/20 splits), methods: {', '.join(methods)}.",
              f"Network: {h.get('hidden')} sigmoid hidden units, SGD lr {h.get('lr')}, momentum {h.get('momentum')}, "
              f"weight decay {h.get('weight_decay')} (source: {doc.get('hyper_source', '?')}).",
              f"Epochs {cfg.get('epochs')} (passive, SASLA), batch {cfg.get('batch_size')}, β {cfg.get('beta')}, "
              f"selection every {cfg.get('selection_interval')} epoch(s), Φ norm {cfg.get('norm')}; uncertainty "
              f"sampling: query size {cfg.get('query_size')}, {cfg.get('query_epochs')} epochs per query, "
              f"ensemble of {cfg.get('ensemble_size')}. Convergence: std of the last {cfg.get('conv_window')} epoch "
              f"losses < {cfg.get('conv_threshold')}.", ""]
    if "seconds" in doc:
        lines += [f"Wall time: {doc['seconds']:.1f} s with {doc.get('workers', '?')} worker process(es).", ""]

    paper = doc.get("paper_accuracy", {})
    if task == "classification":
        head = ["method", "accuracy", "F1 (macro)", "precision", "recall", "MCC"]
        if paper:
            head.append("paper's accuracy")
        lines += ["## Test scores (mean ± std over trials)", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for m, s in methods.items():
            row = [m, f"{_f(s['accuracy_mean'])} ± {_f(s['accuracy_std'])}", f"{_f(s['f1_mean'])} ± {_f(s['f1_std'])}",
                   _f(s["precision_mean"]), _f(s["recall_mean"]), _f(s["mcc_mean"])]
            if paper:
                row.append(f"{paper[m]['mean']:.3f} ± {paper[m]['std']:.3f}" if m in paper else "—")
            lines.append("| " + " | ".join(row) + " |")
    else:
        lines += ["## Test scores (mean ± std over trials)", "", "| method | MSE | R² |", "|---|---|---|"]
        for m, s in methods.items():
            lines.append(f"| {m} | {_f(s['mse_mean'], 4)} ± {_f(s['mse_std'], 4)} | "
                         f"{_f(s['r2_mean'])} ± {_f(s['r2_std'])} |")
    lines += ["", "## Convergence and data use", "",
              "| method | epochs | epochs to convergence | convergence rate | observations seen | "
              "training set: initial → final (reduction) | s / trial |",
              "|---|---|---|---|---|---|---|"]
    for m, s in methods.items():
        red = s.get("train_size_reduction")
        lines.append(f"| {m} | {_f(s['epochs_mean'], 0)} | {_f(s['epochs_to_convergence_mean'], 1)} | "
                     f"{_f(s['convergence_rate'], 2)} | {_f(s['observations_seen_mean'], 0)} | "
                     f"{_f(s['initial_train_size_mean'], 0)} → {_f(s['final_train_size_mean'], 1)} "
                     f"({'—' if red is None else f'{100 * red:.1f}%'}) | {_f(s['seconds_per_trial'], 2)} |")
    st = doc["statistics"]
    lines += ["", f"## Statistics ({st['metric']}, paired by trial)", "",
              f"Friedman: χ² = {_f(st['friedman_statistic'])}, p = {_p(st['friedman_p'])}. "
              f"Nemenyi critical difference (α = 0.05): {_f(st['critical_difference'])}.", "",
              "| method | average rank (1 = best) |", "|---|---|"]
    lines += [f"| {m} | {r:.2f} |" for m, r in st["average_ranks"].items()]
    lines += ["", "| pair | Wilcoxon W | p | p (Bonferroni) | median difference | Nemenyi p |", "|---|---|---|---|---|---|"]
    for pair, w in st["wilcoxon"].items():
        a, b = pair.split(" vs ")
        nem = st["nemenyi_p"][a][b] if st.get("nemenyi_p") else None
        lines.append(f"| {pair} | {_f(w['statistic'], 1)} | {_p(w['p'])} | {_p(w['p_bonferroni'])} | "
                     f"{w['median_difference']:+.4f} | {_p(nem)} |")
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{name}]({path})" for name, path in figures.items()]
    return "\n".join(lines) + "\n"
