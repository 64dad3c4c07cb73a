"""``corpus recipe show R`` and ``corpus recipe keys``."""

from __future__ import annotations


def cmd_show(args) -> int:
    from corpus.recipe import load_recipe

    print(load_recipe(args.recipe).to_yaml(), end="")
    return 0


def cmd_keys(args) -> int:
    from corpus.recipe import format_keys, recipe_keys

    print(format_keys(recipe_keys()), end="")
    return 0


def register(sub) -> None:
    p = sub.add_parser("recipe", help="print a resolved recipe, or every key --set accepts",
                       description="Recipes: `corpus recipe show R` prints the resolved recipe R (a built-in name or a path; "
                       "its base applied, defaults filled), `corpus recipe keys` lists every key `--set` accepts.")
    rsub = p.add_subparsers(dest="recipe_command", metavar="SUBCOMMAND", required=True)
    s = rsub.add_parser("show", help="print a resolved recipe", description="Print the resolved recipe (YAML, with its hash).")
    s.add_argument("recipe", help="built-in recipe name or path to a recipe YAML")
    s.set_defaults(func=cmd_show)
    s = rsub.add_parser("keys", help="every key --set accepts, with its type, default and documentation",
                        description="List every recipe key (dotted, as --set takes it) with its type, default and the field's docstring.")
    s.set_defaults(func=cmd_keys)
