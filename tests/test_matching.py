"""Matching imported questions to a task's documents: id, then document, then index, then text (issue 14)."""

from __future__ import annotations

from capcal.formats import ImportedQuestion
from capcal.matching import match_questions, normalize_question, question_texts
from capcal.registry import get_registry
from capcal.tasks import Example


def _ex(i, question, choices=None):
    fields = {"question": question, "answer": "A" if choices else "1"}
    if choices:
        fields["choices"] = choices
    return Example(index=i, id=f"q{i}", doc={}, fields=fields)


def test_normalisation_and_the_multiple_choice_forms():
    assert normalize_question("  Ｗhat\tIS  2+2?\n") == "what is 2+2?"  # NFKC folds the full-width letter
    ex = _ex(0, "Pick one", ["red", "blue"])
    assert question_texts(ex) == ["pick one", "pick one a. red b. blue"]


def test_rules_in_order_and_nothing_guessed():
    exs = [_ex(0, "Alpha?"), _ex(1, "Beta?"), _ex(2, "Same text"), _ex(3, "Same text"), _ex(4, "Gamma?")]
    qs = [
        ImportedQuestion(where="a", id="q1"),                              # id
        ImportedQuestion(where="b", id="zz", index=0, question="ALPHA?"),  # id unknown -> index, text agrees
        ImportedQuestion(where="c", index=1, question="Not beta"),         # index refused by the text
        ImportedQuestion(where="d", question="same   TEXT"),               # ambiguous: two documents
        ImportedQuestion(where="e", question="gamma?"),                    # text
        ImportedQuestion(where="f", id="q4"),                              # the same document again
        ImportedQuestion(where="g"),                                       # nothing to match on
    ]
    rep = match_questions(qs, exs)
    assert [m.position if m else None for m in rep.matches] == [1, 0, None, None, 4, None, None]
    assert [m.how if m else None for m in rep.matches] == ["id", "index", None, None, "text", None, None]
    reasons = dict(rep.unmatched)
    assert "document 1 has another question" in reasons["index 1"]
    assert "no document has this question text" in reasons["index 1"]
    assert "its text matches 2 documents" in reasons["question 'same   TEXT'"]
    assert "matches the same document as question 'gamma?'" in reasons["id 'q4'"]
    assert reasons["g"] == "no id, index, document or question text to match"
    assert rep.by == {"id": 1, "index": 1, "text": 1} and rep.n_matched == 3


def test_real_mmlu_questions_by_document_and_by_question_with_options(data_dir):
    task = get_registry().task("mmlu", data_dir=data_dir)
    exs = task.examples("eval")[:300]
    ex = exs[123]
    with_options = ex.fields["question"] + "\n" + "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(ex.fields["choices"]))
    qs = [ImportedQuestion(where="doc", doc=dict(exs[7].doc)),        # the raw row: capcal derives the id
          ImportedQuestion(where="text", question=with_options.upper())]
    rep = match_questions(qs, exs, task)
    assert [(m.position, m.how) for m in rep.matches] == [(7, "doc"), (123, "text")]
