"""The speaker-split FSDD files: no speaker in both splits, every digit in both, and files that exist."""

import pytest

from mm_adapters.data import fsdd_csv, load_audio_csv


@pytest.mark.parametrize("task,column", [("digit_speaker", "label"), ("asr_speaker", "transcript")])
def test_speaker_split_holds_out_whole_speakers(task, column):
    splits = {split: load_audio_csv(fsdd_csv(task, split)) for split in ("train", "val")}
    speakers = {
        split: {path.rsplit("/", 1)[-1].split("_")[1] for path in data["path"]}
        for split, data in splits.items()
    }
    assert speakers["val"] == {"lucas", "theo"} and not speakers["train"] & speakers["val"]
    assert (len(splits["train"]), len(splits["val"])) == (320, 160)
    for data in splits.values():
        values = data[column] if column == "transcript" else data.features["label"].int2str(data["label"])
        assert len(set(values)) == 10
