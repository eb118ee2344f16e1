"""LSTM-DSSM (Palangi et al., 2016), the network and its training: featurizer, peephole LSTM, towers,
loss, sampler, configuration, model I/O, the encoder and the training loop. Retrieval is in ``index/``."""

from .cell import PeepholeLSTM, PeepholeLSTMCell
from .config import ModelConfig
from .encoder import Encoder
from .featurizer import Vocab, detect_lang, split_words
from .io import LoadedModel, ModelDirError, fingerprint, load_model, save_model
from .loss import dssm_loss
from .tower import LSTMDSSM, Packed, Tower

__all__ = [
    "Encoder", "LSTMDSSM", "LoadedModel", "ModelConfig", "ModelDirError", "Packed", "PeepholeLSTM",
    "PeepholeLSTMCell", "Tower", "Vocab", "detect_lang", "dssm_loss", "fingerprint", "load_model",
    "save_model", "split_words",
]
