"""The label checks the command line runs before training or evaluating (issue 22, items 2 and 3)."""

from mmkeras.data import labels


def where(i):
    return f"line {i + 2}"


def test_integer_labels_against_named_classes_say_what_they_would_mean():
    names = ["eight", "five", "four", "nine", "one", "seven", "six", "three", "two", "zero"]  # sorted names
    problem = labels.integer_label_problem(["eight", 0, "1"], names, where)
    assert problem == ("line 3: label 0 is an integer, but the classes are names: it would mean 'eight' "
                       "(0 = 'eight', 1 = 'five', 2 = 'four', ...; integers index the class names in this order)")
    assert "label '12' is an integer, but the classes are names: it is outside [0, 10)" in \
        labels.integer_label_problem(["12"], names, where)


def test_integer_labels_are_fine_for_index_classes_and_names_that_are_integers():
    assert labels.integer_label_problem([0, "1", 2], ["0", "1", "2"], where) is None  # num_classes only
    assert labels.integer_label_problem(["10", "20"], ["10", "20"], where) is None    # names that look numeric
    assert labels.integer_label_problem([0, 1], None, where) is None
    assert labels.integer_label_problem(["cat", b"dog"], ["cat", "dog"], where) is None


def test_label_warnings_name_rare_training_labels_and_unseen_held_out_ones():
    train = ["seven"] * 5 + ["eight"] * 5 + ["sevn"] + ["nine"] * 2
    warnings = labels.label_warnings((train, where), [("validation", ["seven", "ten", "ten"], where)])
    assert warnings == [
        "label 'sevn' is in only 1 training row (line 12): a typo? a class needs at least 3 examples to learn",
        "label 'nine' is in only 2 training rows (line 13, line 14): a typo? a class needs at least 3 examples "
        "to learn",
        "validation label 'ten' (line 3) is never seen in training: the model cannot predict it",
    ]
    assert labels.label_warnings((["a", "b"] * 3, where)) == []


def test_python_api_warns_when_a_manifest_labels_named_classes_with_integers(tmp_path):
    import numpy as np
    import pytest

    import mmkeras

    (tmp_path / "a.png").write_bytes(mmkeras.codecs.encode_png(np.zeros((8, 8, 3), np.uint8)))
    (tmp_path / "numbers.csv").write_text("image,label\na.png,0\na.png,1\n")
    model = mmkeras.build_model("image_small", class_names=["zero", "one"])
    expected = r"line 2: label 0 is an integer, but the classes are names: it would mean 'zero'"
    with pytest.warns(labels.IntegerLabelWarning, match=expected):
        model.evaluate(str(tmp_path / "numbers.csv"), verbose=0)
