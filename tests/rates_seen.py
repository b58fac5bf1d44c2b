"""A Keras callback shared by the learning-rate tests of callbacks and training."""

import keras


class RatesSeen(keras.callbacks.Callback):
    """The optimizer's rate before every batch, as that batch's update uses it (listed after
    the callbacks that set it, such as `callbacks.Cooldown`)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate.numpy()))
