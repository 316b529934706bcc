"""gradserve: remote autograd through proxy tensors that behave like torch.Tensor."""
