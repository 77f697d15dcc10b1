"""The disaggregated prefill/decode proxy: one client request becomes a prefill hop then a streamed decode hop."""
