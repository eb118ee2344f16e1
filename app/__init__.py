"""The search service: FastAPI app over an LSTM-DSSM encoder and a FAISS index (``create_app``)."""
