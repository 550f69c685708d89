"""The typefaces of the glyph benchmark: print faces to train on, brush, pen and handwriting faces to test on.

A face is a camera and a Hangul syllable an identity. Training sees the print faces only (gothic, myeongjo,
batang, rounded and display faces); the test set holds unseen syllables in unseen faces drawn by brush, pen
or hand, so a model must carry what it learned about a syllable's parts to another domain, as a person
re-identification model trained on one data set is tested on another. The fonts come from Debian packages
(benchmarks/glyphs/packages.txt); paths are relative to the TrueType folder (/usr/share/fonts/truetype).
Variants that only re-encode a face (YetHangul, NanumSquare_ac, the Eco "R" copies) are left out.
"""

from __future__ import annotations

from pathlib import Path

FONT_DIR = Path("/usr/share/fonts/truetype")

TRAIN_FACES = (
    *(f"nanum/NanumBarunGothic{w}.ttf" for w in ("", "Bold", "Light", "UltraLight")),
    *(f"nanum/NanumGothic{w}.ttf" for w in ("", "Bold", "ExtraBold", "Light", "Coding", "CodingBold")),
    *(f"nanum/NanumGothicEco{w}.ttf" for w in ("", "Bold", "ExtraBold")),
    *(f"nanum/NanumMyeongjo{w}.ttf" for w in ("", "Bold", "ExtraBold")),
    *(f"nanum/NanumMyeongjoEco{w}.ttf" for w in ("", "Bold", "ExtraBold")),
    *(f"nanum/NanumSquare{w}.ttf" for w in ("L", "R", "B", "EB")),
    *(f"nanum/NanumSquareRound{w}.ttf" for w in ("L", "R", "B", "EB")),
    *(f"unfonts-core/Un{f}.ttf" for f in ("Batang", "BatangBold", "Dinaru", "DinaruBold", "DinaruLight", "Dotum",
                                          "DotumBold", "Graphic", "GraphicBold")),
    *(f"unfonts-extra/Un{f}.ttf" for f in ("Shinmun", "Taza", "Yetgul", "JamoBatang", "JamoDotum", "JamoNovel",
                                           "JamoSora")),
    *(f"baekmuk/{f}.ttf" for f in ("batang", "dotum", "gulim", "hline")),
    "lexi/LexiGulim.ttf",
    "lexi/LexiSaebomR.ttf",
    "naver-d2coding/D2Coding-Ver1.3.2-20180524-all.ttc",
    *(f"woowa-bm/{f}" for f in ("BMDOHYEON_ttf.ttf", "BMEULJIROTTF.ttf", "BMEuljiro10yearslater.ttf",
                                "BMHANNAAir_ttf.ttf", "BMHANNAPro.ttf", "BMHANNA_11yrs_ttf.ttf", "BMJUA_ttf.ttf")),
)  # fmt: skip

TEST_FACES = (
    *(f"nanum/{f}.ttf" for f in ("NanumBrush", "NanumPen", "NanumBarunpenR", "NanumBarunpenB")),
    *(f"unfonts-core/Un{f}.ttf" for f in ("Gungseo", "Pilgi", "PilgiBold")),
    *(f"unfonts-extra/Un{f}.ttf" for f in ("Pen", "Penheulim", "Pilgia", "Vada")),
    *(f"alee/{f}.ttf" for f in ("Bandal", "Bangwool", "Eunjin", "EunjinNakseo", "Guseul")),
    "woowa-bm/BMKIRANGHAERANG-TTF.ttf",
    "woowa-bm/BMYEONSUNG_ttf.ttf",
)


def ks_x_1001_syllables() -> list[str]:
    """The 2,350 Hangul syllables of KS X 1001 (the common ones; every face above draws them), in code order."""
    return [bytes([high, low]).decode("euc-kr") for high in range(0xB0, 0xC9) for low in range(0xA1, 0xFF)]


def installed(faces: tuple[str, ...], font_dir: Path) -> list[Path]:
    """The faces found under `font_dir`, in the order given."""
    return [font_dir / face for face in faces if (font_dir / face).is_file()]
