"""Code snippets and the wording around them, for the programming tasks of the synthetic
corpora."""

from __future__ import annotations

from bench.corpora.banks import Snippet

# Code snippets for the programming tasks. @name@ and @arg@ are replaced (not str.format:
# the code itself is full of braces).
SNIPPETS = (
    Snippet(
        "Python",
        "python",
        "function",
        "is_palindrome|is_mirror_word|reads_same_backwards",
        "text|word|phrase",
        "checks whether a string is a palindrome",
        'def @name@(@arg@: str) -> bool:\n    cleaned = "".join(ch.lower() for ch in @arg@ if '
        "ch.isalnum())\n    return cleaned == cleaned[::-1]",
        "It removes spaces and punctuation, lowercases the text and compares it with its reverse.",
    ),
    Snippet(
        "Python",
        "python",
        "function",
        "count_words|word_frequencies|tally_words",
        "text|document|sentence",
        "counts how often each word appears in a text",
        "from collections import Counter\n\n\ndef @name@(@arg@: str) -> dict[str, int]:\n"
        "    return dict(Counter(@arg@.lower().split()))",
        "Counter does the counting, and lowercasing first makes capitalized and lowercase "
        "words count as the same word.",
    ),
    Snippet(
        "Python",
        "python",
        "function",
        "mean_of|average|safe_mean",
        "values|numbers|scores",
        "computes the average of a list while skipping missing values",
        "def @name@(@arg@: list[float | None]) -> float:\n    present = [x for x in @arg@ if x "
        "is not None]\n    return sum(present) / len(present) if present else 0.0",
        "Missing values are filtered out first, and an empty list returns zero instead of "
        "raising an error.",
    ),
    Snippet(
        "Python",
        "python",
        "function",
        "fibonacci|fib|nth_fibonacci",
        "n|count|index",
        "returns the n-th Fibonacci number",
        "def @name@(@arg@: int) -> int:\n    a, b = 0, 1\n    for _ in range(@arg@):\n"
        "        a, b = b, a + b\n    return a",
        "It uses a simple loop instead of recursion, so it stays fast even for large inputs.",
    ),
    Snippet(
        "Python",
        "python",
        "function",
        "chunks|batched|split_into_chunks",
        "items|rows|values",
        "splits a list into chunks of a given size",
        "def @name@(@arg@: list, size: int) -> list[list]:\n    return [@arg@[i : i + size] for "
        "i in range(0, len(@arg@), size)]",
        "The slice steps through the list in jumps of the chunk size, and the last chunk may be "
        "shorter.",
    ),
    Snippet(
        "Python",
        "python",
        "function",
        "load_config|read_settings|load_json",
        "path|filename|config_path",
        "reads a JSON file and returns its contents",
        'import json\n\n\ndef @name@(@arg@: str) -> dict:\n    with open(@arg@, encoding="utf-8") '
        "as handle:\n        return json.load(handle)",
        "The with block makes sure the file is closed again, even if parsing fails.",
    ),
    Snippet(
        "Python",
        "python",
        "function",
        "to_fahrenheit|celsius_to_fahrenheit|convert_temperature",
        "celsius|degrees|temp_c",
        "converts a temperature from Celsius to Fahrenheit",
        "def @name@(@arg@: float) -> float:\n    return @arg@ * 9 / 5 + 32",
        "It applies the usual formula: multiply by nine fifths and add thirty-two.",
    ),
    Snippet(
        "Python",
        "python",
        "function",
        "unique|dedupe|remove_duplicates",
        "items|names|values",
        "removes duplicates from a list while keeping the original order",
        "def @name@(@arg@: list) -> list:\n    seen = set()\n    result = []\n    for item in "
        "@arg@:\n        if item not in seen:\n            seen.add(item)\n            "
        "result.append(item)\n    return result",
        "The set remembers what has already been seen, and the list keeps the first occurrence "
        "of each item in order.",
    ),
    Snippet(
        "JavaScript",
        "javascript",
        "function",
        "debounce|delayCall|debounced",
        "wait|delayMs|ms",
        "delays a callback until the user stops typing",
        "function @name@(fn, @arg@) {\n  let timer;\n  return (...args) => {\n    "
        "clearTimeout(timer);\n    timer = setTimeout(() => fn(...args), @arg@);\n  };\n}",
        "Every new call cancels the previous timer, so the callback only runs once the calls "
        "have stopped for the given delay.",
    ),
    Snippet(
        "JavaScript",
        "javascript",
        "function",
        "titleCase|capitalizeWords|toTitle",
        "text|str|title",
        "capitalizes the first letter of every word",
        'function @name@(@arg@) {\n  return @arg@\n    .split(" ")\n    .map((word) => '
        'word.charAt(0).toUpperCase() + word.slice(1))\n    .join(" ");\n}',
        "It splits the string on spaces, upper-cases the first character of each word and joins "
        "the words again.",
    ),
    Snippet(
        "JavaScript",
        "javascript",
        "function",
        "sumAll|total|sumValues",
        "numbers|values|items",
        "adds up all the numbers in an array",
        "const @name@ = (@arg@) => @arg@.reduce((sum, x) => sum + x, 0);",
        "reduce walks through the array once and carries the running total, starting from zero.",
    ),
    Snippet(
        "SQL",
        "sql",
        "query",
        "orders|payments|sales",
        "5|10|20",
        "finds the @arg@ customers who spent the most in the @name@ table",
        "SELECT customer_id, SUM(amount) AS total_spent\nFROM @name@\nGROUP BY customer_id\n"
        "ORDER BY total_spent DESC\nLIMIT @arg@;",
        "It groups the rows by customer, adds up the amounts and keeps only the top rows.",
    ),
    Snippet(
        "SQL",
        "sql",
        "query",
        "users|accounts|members",
        "created_at|signup_date|joined_at",
        "counts how many @name@ signed up on each day",
        "SELECT DATE(@arg@) AS day, COUNT(*) AS signups\nFROM @name@\nGROUP BY DATE(@arg@)\n"
        "ORDER BY day;",
        "DATE() drops the time part, so all sign-ups from the same day fall into one group.",
    ),
    Snippet(
        "Bash",
        "bash",
        "command",
        ".|/var/log|~/Downloads",
        "100|50|500",
        "lists files larger than @arg@ MB in @name@, biggest last",
        "find @name@ -type f -size +@arg@M -exec ls -lh {} + | sort -k5 -h",
        "find selects the large files, ls prints their sizes in a readable form and sort orders "
        "them by size.",
    ),
)


CODE_ASKS = (
    "Write a {language} {kind} that {desc}.",
    "Can you show me a {language} {kind} that {desc}?",
    "I need a short {language} {kind} that {desc}.",
    "Implement a {language} {kind} that {desc}.",
)


CODE_NAMING = {
    "function": ("Call it `{name}`.", "Name the function `{name}`.", "Use `{name}` as the name."),
    "query": ("The table is called `{name}`.", "Assume the data is in a table named `{name}`."),
    "command": ("Start the search in `{name}`.", "Run it from `{name}`."),
}


CODE_EXTRAS = (
    "Please keep it short.",
    "Add a short explanation after the code.",
    "I'm using it in a small side project.",
    "It's for a coding interview tomorrow.",
    "Make it easy to read for a beginner.",
    "No external libraries, please.",
    "I'm still learning, so keep it simple.",
)


CODE_INTROS = (
    "Here is a simple {language} {kind} that {desc}:",
    "Sure! This {kind} {desc}:",
    "You can do it like this:",
    "Here is one way to write it:",
)


CODE_OUTROS = (
    "",
    " You can adapt it to your own data easily.",
    " Let me know if you need a version with tests.",
    " It is short, but it handles the common cases well.",
    " Try it with a few small inputs to see how it behaves.",
    " Feel free to rename things to match your project.",
)


EXPLAIN_CODE_OPENINGS = (
    "This {kind} {desc}.",
    "The {kind} above {desc}.",
    "In short, this {kind} {desc}.",
    "Put simply, the {kind} {desc}.",
)


EXPLAIN_CODE_ASKS = (
    "Explain what this {language} code does.",
    "What does the following {kind} do?",
    "Can you walk me through this code?",
    "Describe the purpose of this snippet in plain English.",
    "I found this {language} {kind} in an old project. What is it for?",
    "A colleague sent me this {kind}. Could you explain it in a few sentences?",
)
