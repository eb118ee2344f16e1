import pytest

from models.featurizer import Vocab, detect_lang, is_cjk, letter_trigrams, split_words, word_ngrams


def test_dssm_letter_trigrams():
    assert letter_trigrams("good") == ["#go", "goo", "ood", "od#"]
    assert letter_trigrams("a") == ["#a#"]


def test_normalisation_and_splitting():
    # NFKC maps full-width letters and digits to ASCII; case is folded; punctuation separates.
    assert split_words("ＧＯＯＤ Morning, World!") == ["good", "morning", "world"]
    assert split_words("e-mail_address") == ["e", "mail", "address"]


def test_chinese_characters_are_words_with_neighbour_bigrams():
    words = split_words("感冒灵")
    assert words == ["感", "冒", "灵"]
    assert word_ngrams(words) == [["感", "#感", "感冒"], ["冒", "感冒", "冒灵"], ["灵", "冒灵", "灵#"]]


def test_mixed_chinese_english():
    words = split_words("吃999感冒灵 ok吗")
    assert words == ["吃", "999", "感", "冒", "灵", "ok", "吗"]
    grams = word_ngrams(words)
    assert grams[1] == ["#99", "999", "99#"]
    # a CJK character next to a non-CJK word sees a boundary, not the Latin word
    assert grams[0] == ["吃", "#吃", "吃#"]
    assert grams[5] == ["#ok", "ok#"]


def test_empty_whitespace_and_emoji():
    assert split_words("") == []
    assert split_words("  \t\n ") == []
    assert split_words("?!...") == []
    assert split_words("I ❤ 🍕") == ["i", "❤", "🍕"]
    v = Vocab(["#i#"], num_buckets=7)
    ids = v.encode("I 🍕")
    assert ids[0] == [0] and len(ids[1]) == 1 and 1 <= ids[1][0] < 8  # unseen → a hash bucket, not dropped


def test_unseen_ngrams_hash_deterministically_into_buckets():
    v = Vocab(["#go", "goo"], num_buckets=10)
    assert v.id("#go") == 0 and v.id("goo") == 1
    b = v.id("xyz")
    assert 2 <= b < 12 and b == Vocab(["#go", "goo"], num_buckets=10).id("xyz")
    assert len(v) == 12


def test_build_is_deterministic_and_ranked_by_frequency():
    texts = ["good good food", "good mood"]
    v1 = Vocab.build(texts, size=5, num_buckets=3, min_count=1)
    v2 = Vocab.build(list(reversed(texts)), size=5, num_buckets=3, min_count=1)
    assert v1.ngrams == v2.ngrams
    assert v1.ngrams[0] == "od#"  # in good×3, food, mood: 5 times
    assert len(v1.ngrams) == 5


def test_save_load_round_trip(tmp_path):
    v = Vocab.build(["感冒灵颗粒", "good morning 🍕"], size=100, num_buckets=11, lang="zh", min_count=1)
    p = tmp_path / "vocab.json"
    v.save(p)
    w = Vocab.load(p)
    assert w.ngrams == v.ngrams and w.num_buckets == 11 and w.lang == "zh"
    assert w.encode("感冒 good 🍕") == v.encode("感冒 good 🍕")
    assert "感冒" in p.read_text(encoding="utf-8")  # human-readable, not escaped


def test_load_rejects_foreign_file(tmp_path):
    p = tmp_path / "v.json"
    p.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a vocabulary"):
        Vocab.load(p)


def test_detect_lang():
    assert detect_lang(["小孩发烧吃什么药", "月经量突然很多"]) == "zh"
    assert detect_lang(["What are the symptoms of glaucoma?"]) == "en"


def test_lone_surrogate_does_not_crash():
    # JSON can carry "\ud800"; it must hash into a bucket like any unseen n-gram.
    ids = Vocab(["#go"], num_buckets=5).encode("a\ud800b go")
    assert ids[-1][0] == 0 and all(0 <= i < 6 for w in ids for i in w)


def test_word_cache_gives_the_ngram_ids_and_fresh_lists():
    texts = ["感冒 good goods", "good 冒灵 morning good", "🙂 good-bye 感冒灵"]
    vocab = Vocab.build(texts * 2, size=20, num_buckets=50)
    expect = [[[vocab.id(g) for g in grams] for grams in word_ngrams(split_words(t))] for t in texts]
    assert vocab.featurize(texts) == expect  # first sight: computed
    misses = vocab._word_ids.cache_info().misses
    first = vocab.encode(texts[1])
    first[0].append(-1)  # a caller changing what it was given changes nothing cached
    assert vocab.featurize(texts) == expect  # second sight: from the cache, CJK characters still by context
    info = vocab._word_ids.cache_info()
    assert info.misses == misses and info.hits > 0  # every word again a hit; CJK characters never asked
    # The cache holds the words of their own n-grams: not the CJK characters (the emoji is one of its own).
    assert info.currsize == len({w for t in texts for w in split_words(t) if not is_cjk(w)}) == 5


def test_word_cache_skips_long_words_and_holds_no_reference_to_its_vocab():
    import gc
    import weakref

    from models.featurizer import CACHED_WORD_CHARS

    long_word = "x" * (CACHED_WORD_CHARS + 1)
    vocab = Vocab.build(["short words here"], size=20, num_buckets=50)
    assert vocab.encode(f"short {long_word}") == [[vocab.id(g) for g in letter_trigrams(w)] for w in ("short", long_word)]
    assert vocab._word_ids.cache_info().currsize == 1  # "short" only: a long word's entry is not kept
    # Freed by reference counting alone (the service runs with gc.freeze, so a cycle would outlive a reload).
    gc.disable()
    try:
        ref = weakref.ref(vocab)
        del vocab
        assert ref() is None
    finally:
        gc.enable()


def test_stop_words_are_skipped_unless_they_are_the_whole_text(tmp_path):
    texts = ["the symptoms of the flu", "what is the flu"]
    v = Vocab.build(texts, size=100, num_buckets=7, min_count=1, stopwords=["The", "of", "is"])
    assert v.stopwords == {"the", "of", "is"}  # normalised as split_words writes words
    assert v.words("The symptoms OF the flu") == ["symptoms", "flu"]
    assert v.encode("the symptoms of the flu") == v.encode("symptoms flu")
    assert "#th" not in v.ngrams and "#of" not in v.ngrams and "#sy" in v.ngrams  # never counted
    # A text of nothing but stop words is read whole, not as an empty text.
    assert v.words("the of is") == ["the", "of", "is"] and len(v.encode("the of is")) == 3
    # Without a list every word is read, as before the option.
    plain = Vocab.build(texts, size=100, num_buckets=7, min_count=1)
    assert plain.words("the flu") == ["the", "flu"] and "#th" in plain.ngrams
    # The list is part of the vocabulary file (the model keeps the list it was trained with)...
    v.save(tmp_path / "v.json")
    w = Vocab.load(tmp_path / "v.json")
    assert w.stopwords == v.stopwords and w.encode("the symptoms of the flu") == v.encode("symptoms flu")
    # ...and absent from a file without one, so older models' files and fingerprints stay as they were.
    plain.save(tmp_path / "p.json")
    assert "stopwords" not in (tmp_path / "p.json").read_text(encoding="utf-8")
    assert Vocab.load(tmp_path / "p.json").stopwords == frozenset()


def test_stop_words_in_a_vocabulary_file_are_checked(tmp_path):
    d = Vocab(["#go"], num_buckets=3).to_dict()
    with pytest.raises(ValueError, match="stopwords must be a list of strings"):
        Vocab.from_dict({**d, "stopwords": "the"})
    with pytest.raises(ValueError, match="stopwords must be a list of strings"):
        Vocab.from_dict({**d, "stopwords": [1, 2]})
