"""Provides the mmzoo-example plugin's hooks: what it registers, declared without importing torch.

mmzoo imports this module to list the zoo, so it names its factories as
``"module:attr"`` strings; the classes in :mod:`mmzoo_example.parts` and the
dataset in :mod:`mmzoo_example.data` are imported only when a part is built.
"""

from mmzoo.plugin import Param, hookimpl


@hookimpl
def register_encoders(register):
    register(
        "char_ngrams",
        "mmzoo_example.parts:CharNgramEncoder",
        description="fastText-style bag of hashed character n-grams, mean pooled; trains from scratch",
        modality="text",
        params=(
            Param("dim", "int", 64, "embedding and output width", min=1),
            Param("n", "int", 3, "longest n-gram; every length from 1 to n is embedded", choices=(1, 2, 3, 4)),
            Param("buckets", "int", 4096, "hash buckets, i.e. rows of the embedding table", min=2),
            Param("max_length", "int", 64, "characters kept per text; longer texts are truncated", min=1),
        ),
    )


@hookimpl
def register_fusions(register):
    register(
        "hadamard",
        "mmzoo_example.parts:HadamardFusion",
        description="VQA-style fusion (Antol et al. 2015): tanh projections multiplied element-wise, then a head",
        params=(Param("dim", "int", 64, "width both modalities are projected to before multiplying", min=1),),
    )


@hookimpl
def register_combiners(register):
    register(
        "geometric_mean",
        "mmzoo_example.parts:GeometricMeanCombiner",
        description="Renormalised geometric mean of member probabilities (nothing to fit)",
        params=(Param("temperature", "float", 1.0, "divides the mean log-probability; > 1 softens, < 1 sharpens",
                      min=0.01, max=100.0),),
    )


@hookimpl
def register_datasets(register):
    register(
        "colour-match",
        "mmzoo_example.data:load_colour_match",
        description="does the text name the colour of the drawn square? match/no_match, needs both modalities",
        params=(
            Param("seed", "int", 0, "seed for the drawings, the phrasings and the splits", min=0),
            Param("images", "int", 600, "number of drawings; each gets one matching and one non-matching text",
                  min=20),
            Param("image_size", "int", 16, "side of each drawing in pixels", min=4),
        ),
    )
