"""Realistic instruction/response texts shared by the filter tests, English and Chinese."""

EN_ANSWER = (
    "Photosynthesis is the process by which green plants use sunlight to turn carbon dioxide "
    "and water into glucose and oxygen. It takes place mainly in the chloroplasts of leaf "
    "cells, where chlorophyll absorbs light energy. The glucose feeds the plant, and the "
    "oxygen is released into the air that we breathe."
)

ZH_ANSWER = (
    "光合作用是绿色植物利用光能，把二氧化碳和水转化为葡萄糖并释放氧气的过程。"
    "这个过程主要发生在叶片细胞的叶绿体中，叶绿素负责吸收光能。"
    "植物用产生的葡萄糖来生长，而释放出的氧气则是我们呼吸所需要的。"
)

EN_CODE_ANSWER = (
    "Here is a small Java class that counts words:\n\n"
    "```java\n"
    "public class Counter {\n"
    "    public int count(String text) {\n"
    "        if (text == null) {\n"
    "            return 0;\n"
    "        }\n"
    "        if (text.isBlank()) {\n"
    "            return 0;\n"
    "        }\n"
    '        return text.trim().split("\\\\s+").length;\n'
    "    }\n"
    "}\n"
    "```\n\n"
    "It returns zero for empty input and otherwise splits the text on runs of whitespace, "
    "which is how most editors count words too."
)
