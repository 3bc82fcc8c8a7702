"""Provides the metadata of mmzoo's built-in datasets (torch-free, imports nothing heavy)."""

from __future__ import annotations

from mmzoo.zoo.parts import Param


def register_all(register) -> None:
    """Register the bundled datasets; factories are imported only when a dataset is built."""
    register(
        "emoji",
        "mmzoo.data.emoji:load_emoji",
        description="3,781 Twemoji images with their names; 9 categories or 98 subcategories",
        params=(
            Param("label_set", "str", "category", help="default target: the 9 categories or the 98 subcategories",
                  choices=("category", "subcategory")),
        ),
    )
    register(
        "flags",
        "mmzoo.data.flags:load_flags",
        description="253 country and territory flags (flag-icons, MIT) with name and capital; 6 continents",
    )
    register(
        "digits-match",
        "mmzoo.data.digits_match:load_digits_match",
        description="does the text name the handwritten 8x8 digit? match/no_match, needs both modalities",
        params=(
            Param("seed", "int", 0, help="seed for the image splits, the phrasings and the non-matching digits"),
            Param("pairs_per_image", "int", 2, help="texts per image, half matching and half not (even, >= 2)"),
            Param("image_size", "int", 32, help="side in pixels the 8x8 digits are scaled up to (nearest)"),
        ),
    )
    register(
        "wnut17",
        "mmzoo.data.tokens:load_wnut17",
        description="WNUT-17 emerging entities (CC-BY 4.0): 3,394/1,009/1,287 English sentences, 6 BIO entity types",
        task="tokens",
    )
