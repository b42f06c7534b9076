import csv

import pytest

from udcshield.evaluation import read_records_csv, validate_record, write_records_csv


def make_records():
    return [
        {"image_id": "0001", "model": "discnet", "defense": "none", "attack": "clean", "budget": 0,
         "metric": "psnr", "value": 35.123456789},
        {"image_id": "0001", "model": "discnet", "defense": "purify", "attack": "pgd", "budget": 8,
         "metric": "ssim", "value": 0.1 + 0.2, "draw": 1, "seed": 2**62 + 5},
        {"image_id": "0002", "model": "discnet", "defense": "none", "attack": "pgd", "budget": 8,
         "metric": "psnr", "value": float("inf")},
    ]


def test_round_trip(tmp_path):
    path = tmp_path / "sub" / "records.csv"
    write_records_csv(make_records(), path)
    back = read_records_csv(path)
    assert back == make_records()
    assert [p.name for p in path.parent.iterdir()] == ["records.csv"]  # no temp file left
    with path.open() as fh:
        assert next(csv.reader(fh)) == ["image_id", "model", "defense", "attack", "budget", "metric",
                                        "value", "draw", "seed"]


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "records.csv"
    write_records_csv(make_records(), path)
    bad = make_records() + [{**make_records()[0], "budget": -1}]
    with pytest.raises(ValueError, match="record 3.*budget"):
        write_records_csv(bad, path)
    assert read_records_csv(path) == make_records()
    assert len(list(tmp_path.iterdir())) == 1


def test_read_missing_columns(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("image_id,model,attack,budget,metric,value\n1,m,pgd,8,psnr,30\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['defense'\]"):
        read_records_csv(path)
    path.write_text("image_id,model,defense,attack,budget,metric,value,colour\n")
    with pytest.raises(ValueError, match="unknown column"):
        read_records_csv(path)


def test_read_bad_rows(tmp_path):
    path = tmp_path / "r.csv"
    header = "image_id,model,defense,attack,budget,metric,value\n"
    path.write_text(header + "1,m,none,pgd,8.5,psnr,30\n")
    with pytest.raises(ValueError, match="line 2.*budget"):
        read_records_csv(path)
    path.write_text(header + "1,m,none,pgd,8,psnr,abc\n")
    with pytest.raises(ValueError, match="value"):
        read_records_csv(path)
    path.write_text(header + "1,,none,pgd,8,psnr,30\n")
    with pytest.raises(ValueError, match="model"):
        read_records_csv(path)


def test_validate_record_errors():
    good = make_records()[0]
    with pytest.raises(ValueError, match="missing"):
        validate_record({k: v for k, v in good.items() if k != "metric"})
    with pytest.raises(ValueError, match="unknown"):
        validate_record({**good, "extra": 1})
    with pytest.raises(ValueError, match="NaN"):
        validate_record({**good, "value": float("nan")})
    with pytest.raises(ValueError, match="budget"):
        validate_record({**good, "budget": 2.0})
    with pytest.raises(ValueError, match="budget"):
        validate_record({**good, "budget": True})
