"""Stop-word lists a model may skip before it reads a text (``ModelConfig.stopwords``).

Why a model would: trained on templated questions ("What are the symptoms of X ?"), the LSTM also
learns to match the template's function words, and a real user's question ("hi, I would like to know if
there is any support for those with X") is full of them; skipped in training and at search time, the
model reads the content words of both. The words are stored in the model's ``vocab.json`` when it is
trained, so a model keeps the list it was trained with even if this table changes.
"""

from __future__ import annotations

# Lucene's English stop set (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``; also bm25s's ``STOPWORDS_EN``).
LUCENE_EN = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
    "will", "with",
)

# NLTK's English stop words (179: pronouns, auxiliaries, question words, negations, contractions' parts;
# also bm25s's ``STOPWORDS_EN_PLUS``). A contraction is split as the featurizer splits it ("don't" → don, t).
NLTK_EN = (
    "a", "about", "above", "after", "again", "against", "ain", "all", "am", "an", "and", "any", "are",
    "aren", "aren't", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "couldn", "couldn't", "d", "did", "didn", "didn't", "do", "does",
    "doesn", "doesn't", "doing", "don", "don't", "down", "during", "each", "few", "for", "from",
    "further", "had", "hadn", "hadn't", "has", "hasn", "hasn't", "have", "haven", "haven't", "having",
    "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "isn", "isn't", "it", "it's", "its", "itself", "just", "ll", "m", "ma", "me", "mightn",
    "mightn't", "more", "most", "mustn", "mustn't", "my", "myself", "needn", "needn't", "no", "nor",
    "not", "now", "o", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves",
    "out", "over", "own", "re", "s", "same", "shan", "shan't", "she", "she's", "should", "should've",
    "shouldn", "shouldn't", "so", "some", "such", "t", "than", "that", "that'll", "the", "their",
    "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to",
    "too", "under", "until", "up", "ve", "very", "was", "wasn", "wasn't", "we", "were", "weren",
    "weren't", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "won",
    "won't", "wouldn", "wouldn't", "y", "you", "you'd", "you'll", "you're", "you've", "your", "yours",
    "yourself", "yourselves",
)

# The question words, which a templated training set's questions turn on ("What causes X" and "How to
# prevent X" ask for different answers): NLTK's list without them is ``nltk-q``.
QUESTION_WORDS = ("what", "when", "where", "which", "who", "whom", "why", "how")

STOPWORD_LISTS: dict[str, tuple[str, ...]] = {
    "none": (), "lucene": LUCENE_EN, "nltk": NLTK_EN, "nltk-q": tuple(w for w in NLTK_EN if w not in QUESTION_WORDS),
}
